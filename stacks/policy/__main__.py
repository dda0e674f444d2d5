"""otelstack's CrossGuard policy pack: `pulumi preview --policy-pack stacks/policy` (policies: pack.py)."""

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from stacks.policy.pack import POLICIES  # importable once the repository root is on the path

PolicyPack(name="otelstack", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
