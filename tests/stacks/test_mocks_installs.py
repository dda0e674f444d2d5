"""cert-manager and the operator installed by the stack, under Pulumi's mocks: the program hands the pinned
chart and kustomization to the provider's own components (helm.v4.Chart, kustomize.v2.Directory) with the
values otelstack rendered, and orders them — cert-manager's chart before the platform's ClusterIssuer and
Certificates, the operator's kustomization after cert-manager and before the Instrumentation CR. A missing
module or a wrong chart path stops the program with an error naming both.

Mocks do not render a chart's children (pulumi-kubernetes#3183): what the chart and kustomization produce
is tested with the real provider in test_real_installs.py."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.kubernetes.objects import ThirdParty, pinned_module
from stacks.components import third_party
from tests.stacks.mocked import Registered, run_program, with_all_secrets
from tests.stacks.test_mocks_program import failed_program, stack_config

CHART = "kubernetes:helm.sh/v4:Chart"
DIRECTORY = "kubernetes:kustomize/v2:Directory"


def installing(**extra: Any) -> dict[str, Any]:
    config = stack_config("dev")
    cluster = {**(config.get("otelstack:cluster") or {}), "installCertManager": True, "installOperator": True}
    return with_all_secrets({**config, "otelstack:cluster": cluster, **extra})


@functools.cache
def installed() -> tuple[Registered, ...]:
    return tuple(run_program(installing()))


def one(typ: str, resources: tuple[Registered, ...] | None = None) -> Registered:
    (found,) = [r for r in resources or installed() if r.typ == typ]
    return found


def test_the_chart_is_the_pinned_module_s_with_the_rendered_values() -> None:
    chart = one(CHART)
    module, version = pinned_module("cert-manager")
    path = Path(chart.inputs["chart"])
    assert path.parts[-3:] == ("deploy", "charts", "cert-manager") and f"{module}@{version}" in str(path)
    assert (path / "Chart.yaml").is_file()
    assert chart.inputs["namespace"] == "cert-manager"
    values = chart.object["values"]
    assert values["crds"] == {"enabled": True, "keep": True} and values["image"] == {"tag": version}
    assert chart.urn.endswith("otelstack:platform:CertManager$kubernetes:helm.sh/v4:Chart::cert-manager")


def test_the_kustomization_is_our_overlay_over_the_pinned_config_default() -> None:
    directory = one(DIRECTORY)
    overlay_dir = Path(directory.inputs["directory"])
    overlay = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())
    (upstream,) = overlay["resources"]
    assert not Path(upstream).is_absolute()  # kustomize refuses absolute resource paths
    resolved = (overlay_dir / upstream).resolve()
    module, version = pinned_module("opentelemetry-operator")
    assert resolved.parts[-2:] == ("config", "default") and f"{module}@{version}" in str(resolved)
    assert (resolved / "kustomization.yaml").is_file()
    assert overlay["namespace"] == directory.inputs["namespace"] == "opentelemetry-operator-system"
    assert overlay["images"][0]["newTag"] == version.removeprefix("v")


def test_ordering_cert_manager_then_certificates_operator_then_instrumentation() -> None:
    resources = installed()
    chart, directory = one(CHART), one(DIRECTORY)
    # the chart after its namespace object; the kustomization after cert-manager and its own namespace/policies
    assert "cert-manager" in chart.depends_on
    assert "cert-manager" in directory.depends_on
    assert {"opentelemetry-operator-system", "opentelemetry-operator-system/otelstack-default-deny"} <= set(
        directory.depends_on
    )
    for r in resources:
        if r.kind in ("Issuer", "ClusterIssuer", "Certificate"):
            assert "cert-manager" in r.depends_on, r.name  # the component holding the chart: all its children
        if r.kind == "Instrumentation":
            assert "operator" in r.depends_on, r.name
    # without the installs nothing waits for them (they are present)
    plain = run_program(with_all_secrets(stack_config("dev")))
    assert not [r for r in plain if r.typ in (CHART, DIRECTORY)]
    assert all("operator" not in r.depends_on for r in plain if r.kind == "Instrumentation")


def test_readiness_waits_are_skipped_only_on_a_cluster_without_nodes() -> None:
    assert "skipAwait" not in one(CHART).inputs and "skipAwait" not in one(DIRECTORY).inputs
    skipping = tuple(run_program(installing(**{"otelstack:withoutNodes": "true"})))
    assert one(CHART, skipping).inputs["skipAwait"] is True
    assert one(DIRECTORY, skipping).inputs["skipAwait"] is True


def test_a_missing_module_stops_the_program_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(third_party.MODULE_DIR_ENV, str(tmp_path))
    message = failed_program(installing())
    assert "cert-manager: github.com/cert-manager/cert-manager@v1.21.2 is not under" in message, message


def test_a_module_without_the_chart_stops_the_program_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "github.com/cert-manager/cert-manager@v1.21.2/deploy/charts/cert-manager").mkdir(parents=True)
    monkeypatch.setenv(third_party.MODULE_DIR_ENV, str(tmp_path))
    message = failed_program(installing())
    assert "has no Chart.yaml under deploy/charts/cert-manager" in message, message


def test_a_source_the_catalog_does_not_pin_is_refused() -> None:
    source = ThirdParty("helm-chart", "cert-manager", "github.com/cert-manager/cert-manager", "v1.0.0", "x", "n", {})
    with pytest.raises(third_party.SourceMissing, match=r"v1\.0\.0 is not pinned in catalog/kubernetes_tools.yaml"):
        third_party.module_dir(source)
    module, version = pinned_module("cert-manager")
    wrong_path = ThirdParty("helm-chart", "cert-manager", module, version, "deploy/charts/nope", "n", {})
    with pytest.raises(third_party.SourceMissing, match=r"has no Chart\.yaml under deploy/charts/nope"):
        third_party.source_dir(wrong_path)
