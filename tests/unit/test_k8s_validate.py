"""Settings errors and the validators of the exported objects: each rejects a bad object, plan writes nothing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from otelstack.cli import main
from otelstack.errors import SpecError
from otelstack.kubernetes.settings import load_stack_settings
from otelstack.kubernetes.stack import export_stack
from otelstack.validate import kubernetes as kv
from tests.unit.k8s_helpers import CONFIGS, ROOT, stack

BAD_POD_SECURITY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "bad", "namespace": "observability"},
    "spec": {
        "selector": {"matchLabels": {"app": "bad"}},
        "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}]},
        },
    },
}


def test_kubernetes_validate_rejects_an_unknown_field() -> None:
    pytest.importorskip("kubernetes_validate")
    report = kv.Report()
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [], "typo": 1}}
    kv.validate_schemas([bad], report)
    assert report.errors and "typo" in report.errors[0] and report.errors[0].startswith("Service x: spec")


def test_the_crd_check_rejects_a_misspelled_field_and_accepts_a_good_resource(tmp_path: Path) -> None:
    crd = tmp_path / "widgets.yaml"
    crd.write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n"
        "spec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n"
        "  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n"
        "        properties:\n          spec:\n            type: object\n            properties:\n"
        "              size: {type: integer}\n"
    )
    good = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    bad = {**good, "spec": {"sise": 3}}
    report = kv.Report()
    kv.validate_custom_resources([good], [crd], report)
    assert report.errors == []
    kv.validate_custom_resources([bad], [crd], report)
    assert len(report.errors) == 1 and "'sise' was unexpected" in report.errors[0]


def test_checkov_rejects_a_privileged_container() -> None:
    if kv.checkov_program() is None:
        pytest.skip("checkov is not installed")
    report = kv.Report()
    kv.run_checkov(export_stack_of([BAD_POD_SECURITY]), report)
    assert any("CKV_K8S_16" in e for e in report.errors), report.errors  # privileged containers


def export_stack_of(objects: list[dict]) -> dict[str, str]:  # type: ignore[type-arg]
    from otelstack.kubernetes.objects import Component

    return export_stack((Component("beyla", tuple(objects)),))


def test_the_shipped_stacks_pass_every_validator() -> None:
    for env in ("dev", "staging", "prod"):
        components = stack(env)
        report = kv.validate_objects([o for c in components for o in c.objects], export_stack(components),
                                     checkov=False)  # fmt: skip
        assert report.errors == [], env


def test_every_checkov_skip_carries_its_reason() -> None:
    text = (ROOT / ".checkov.yaml").read_text()
    skips = re.findall(r"^\s*-\s*(CKV_\w+)(.*)$", text, re.M)
    assert skips
    for check, rest in skips:
        assert re.match(r"\s+#\s+\S.{20,}", rest), f"{check} has no reason"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("config: {}\n", "`config.otelstack:environment` is missing"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster: {storageClas: fast}\n",
         "`otelstack:cluster.storageClas`: unknown key; allowed: namespace, agentNamespace, certManagerNamespace, "
         "storageClass"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster:\n"
         "    opampServer: {replicas: 2, image: {repository: r, tag: '1'}}\n",
         "`otelstack:cluster.opampServer`: `replicas` is 2 with the SQLite registry"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster: {clusterDomain: Cluster.Local.}\n",
         "`otelstack:cluster.clusterDomain`: 'Cluster.Local.' is not a DNS domain"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster: {clusterDomain: a..b}\n",
         "`otelstack:cluster.clusterDomain`: 'a..b' is not a DNS domain"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster:\n"
         "    {installCertManager: true, certManagerNamespace: observability}\n",
         "`certManagerNamespace` is 'observability', the namespace of `namespace` too"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster:\n"
         "    {installOperator: true, operatorNamespace: observability-agent}\n",
         "`operatorNamespace` is 'observability-agent', the namespace of `agentNamespace` too"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster: {installOperator: yes please}\n",
         "`otelstack:cluster.installOperator`: Input should be a valid boolean"),
        ("config:\n  otelstack:environment: dev\n  otelstack:cluster:\n"
         "    collectorImage: {repository: r, tag: latest}\n",
         "is not pinned"),
    ],
)  # fmt: skip
def test_bad_stack_settings_name_the_file_and_key(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(content)
    with pytest.raises(SpecError) as err:
        load_stack_settings(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_plan_with_a_bad_stack_file_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(CONFIGS, tmp_path / "configs")
    (tmp_path / "stacks" / "platform").mkdir(parents=True)
    (tmp_path / "stacks" / "platform" / "Pulumi.dev.yaml").write_text(
        "config:\n  otelstack:environment: dev\n  otelstack:cluster: {namespace: Not_A_Name}\n"
    )
    out = tmp_path / "out"
    assert main(["plan", "--env", "dev", "--configs", str(tmp_path / "configs"), "--out", str(out), "--quiet"]) == 2
    assert "otelstack:cluster.namespace" in capsys.readouterr().err
    assert not out.exists()


def test_plan_fails_and_writes_nothing_when_an_object_is_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("kubernetes_validate")
    from otelstack.kubernetes import stack as stack_module
    from otelstack.kubernetes.objects import Component

    def broken(ctx: object) -> Component:
        return Component("beyla", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}},))

    monkeypatch.setattr(stack_module, "BUILDERS", (*stack_module.BUILDERS, broken))
    out = tmp_path / "out"
    assert main(["plan", "--env", "dev", "--configs", str(CONFIGS), "--out", str(out), "--quiet"]) == 2
    assert "ConfigMap x: (top): Additional properties are not allowed ('dta' was unexpected)" in capsys.readouterr().err
    assert not out.exists()
