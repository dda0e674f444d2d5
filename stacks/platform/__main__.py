"""The otelstack platform on Kubernetes: `pulumi up --stack <env>` (the program: stacks/components/program.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from stacks.components.program import run  # importable once the repository root is on the path

run()
