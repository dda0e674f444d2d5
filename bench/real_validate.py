"""What the real `otelcol-contrib validate` costs in `plan`, and the warm path of `otelstack dist build`.

Prints figures, not assertions. Needs the built collector (`make binaries`). Usage:
    python bench/real_validate.py [--env prod] [--region us-east-1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from unittest import mock

from otelstack.dist.build import build_all
from otelstack.dist.locate import locate
from otelstack.render import render_platform
from otelstack.validate.binary import run_otelcol_validate

ROOT = Path(__file__).parents[1]


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="prod")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    exe = locate("otelcol-contrib")
    if exe is None:
        raise SystemExit("otelcol-contrib is not built: run `make binaries`")
    configs = ROOT / "configs"

    with_real = [timed(lambda: render_platform(configs, args.env, args.region)) for _ in range(args.repeat)]
    # The same plan with no binary found: otelstack's own checks only, for comparison.
    with mock.patch("otelstack.render.run_otelcol_validate", return_value=None):
        without = [timed(lambda: render_platform(configs, args.env, args.region)) for _ in range(args.repeat)]

    files = render_platform(configs, args.env, args.region).files
    collector = {rel: text for rel, text in files.items() if rel.startswith("collector/")}
    per_config = []
    for text in collector.values():
        per_config.append(timed(lambda text=text: run_otelcol_validate(text, exe)))

    warm = [timed(lambda: build_all()) for _ in range(args.repeat)]

    print(f"plan {args.env}/{args.region}: {len(collector)} collector configs, best of {args.repeat}")
    print(f"  with the real validate:    {min(with_real):6.2f} s")
    print(f"  otelstack's checks only:   {min(without):6.2f} s")
    print(f"  ratio:                     {min(with_real) / min(without):6.1f}×")
    print(
        f"one `otelcol-contrib validate`: median {statistics.median(per_config) * 1000:.0f} ms, "
        f"max {max(per_config) * 1000:.0f} ms"
    )
    print(f"`otelstack dist build` with both programs cached: {min(warm) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
