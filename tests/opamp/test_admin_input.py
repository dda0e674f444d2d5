"""Every admin input is checked at the REST API: wrong JSON types, missing fields, huge values and bodies
that are not JSON get a 400 that names the field, and change nothing (never a 500, never a rollout that
the push loop cannot serve)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.opamp.conftest import ADMIN_TOKEN, RunningServer, official_client

PACKAGE = {"name": "otelcol-contrib", "version": "0.160.0", "url": "https://mirror/x.tar.gz", "sha256": "ab" * 32}
DEEP = b'{"target": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def call(server: RunningServer, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.http_url + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture()
def registered(server: RunningServer) -> RunningServer:
    for n in range(2):
        peer = official_client(server.http_url, f"vm-{n}")
        peer.send(peer.build_full_state_message())
    return server


def rollout(**fields: Any) -> bytes:
    return json.dumps({"selector": {"environment": "dev"}, **fields}).encode()


def package(**target: Any) -> bytes:
    return rollout(kind="package", target={**PACKAGE, **target})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "the request body must be a JSON object"),
        (b'[{"kind": "config"}]', "the request body must be a JSON object"),
        (b"null", "the request body must be a JSON object"),
        (b'"config"', "the request body must be a JSON object"),
        (b"12", "the request body must be a JSON object"),
        (b"", "the request body is empty"),
        (b"{kind: config}", "the request body is not JSON"),
        (b"\xff\xfe{}", "the request body is not UTF-8"),
        (DEEP, "nests deeper than 32 levels"),
        (rollout(selector=[]), "selector must be an object of key: value strings"),
        (rollout(selector={"environment": 5}), "selector must be an object of key: value strings"),
        (rollout(selector="environment=dev"), "selector must be an object of key: value strings"),
        (rollout(kind=5), "kind: Input should be 'config' or 'package' (got 5)"),
        (rollout(kind="binary"), "kind: Input should be 'config' or 'package'"),
        (rollout(canary="1"), "canary: Input should be a valid integer (got '1')"),
        (rollout(canary=True), "canary: Input should be a valid integer (got true)"),
        (rollout(canary=1.5), "canary: Input should be a valid integer"),
        (rollout(canary=0), "canary: Input should be greater than or equal to 1"),
        (rollout(canary=10**30), "canary: Input should be less than or equal to 1000000"),
        (rollout(canary=[1]), "canary: Input should be a valid integer"),
        (b'{"selector": {"environment": "dev"}, "canary": 1e400}', "canary: Input should be a valid integer"),
        (rollout(waves="25,50,100"), "waves: Input should be a valid list"),
        (rollout(waves=[50, 25]), "waves must be increasing percentages in 1..100"),
        (rollout(waves=[50, 50]), "waves must be increasing percentages in 1..100"),
        (rollout(waves=[0, 100]), "waves must be increasing percentages in 1..100"),
        (rollout(waves=[101]), "waves must be increasing percentages in 1..100"),
        (rollout(waves=[]), "waves: List should have at least 1 item"),
        (rollout(waves=[25.5, 100]), "waves.0: Input should be a valid integer"),
        (rollout(waves=list(range(1, 101)) * 100), "waves: List should have at most 100 items"),
        (rollout(wave_timeout_s="300"), "wave_timeout_s: Input should be a valid number"),
        (rollout(wave_timeout_s=0), "wave_timeout_s: Input should be greater than 0"),
        (rollout(wave_timeout_s=-5), "wave_timeout_s: Input should be greater than 0"),
        (rollout(wave_timeout_s=1e308), "wave_timeout_s: Input should be less than or equal to 604800"),
        (b'{"selector": {"environment": "dev"}, "wave_timeout_s": NaN}', "NaN is not a JSON number"),
        (b'{"selector": {"environment": "dev"}, "wave_timeout_s": Infinity}', "Infinity is not a JSON number"),
        (rollout(target=[]), "target: Input should be a valid dictionary"),
        (rollout(target="/srv/configs"), "target: Input should be a valid dictionary"),
        (rollout(target={"configs_dir": 5}), "target.configs_dir: Input should be a valid string"),
        (rollout(target={"configs_dir": ""}), "target.configs_dir: String should have at least 1 character"),
        (rollout(target={"variant": "panic"}), "target.variant must be one of normal, emergency, safe-minimal"),
        (rollout(target={"variant": None}), "target.variant: Input should be a valid string"),
        (rollout(target={"configs": "/srv"}), "target.configs: Extra inputs are not permitted"),
        (rollout(selectors={"environment": "dev"}), "selectors: Extra inputs are not permitted"),
        (rollout(target={"configs_dir": "relative/configs"}), "give an absolute path on the server's host"),
        (rollout(kind="package", target={}), "target.name: Field required; target.version: Field required"),
        (rollout(kind="package", target={"version": "0.160.0"}), "target.url: Field required"),
        (package(sha256="zz" * 32), "target.sha256 must be 64 hexadecimal digits, got 'zzzz"),
        (package(sha256="ab" * 31), "target.sha256 must be 64 hexadecimal digits"),
        (package(sha256=12), "target.sha256: Input should be a valid string"),
        (package(version={"major": 0}), "target.version: Input should be a valid string"),
        (package(version=""), "target.version: String should have at least 1 character"),
        (package(version="0.160.0; rm -rf /"), "target.version: String should match pattern"),
        (package(name=["otelcol"]), "target.name: Input should be a valid string"),
        (package(url="javascript:alert(1)"), "target.url: String should match pattern"),
        (package(url="https://mirror/" + "x" * 5000), "target.url: String should have at most 4096 characters"),
        (package(variant="emergency"), "target.variant: Extra inputs are not permitted"),
        (rollout(selector={"environment": "dev", "x" * 300: "y"}), "unknown selector key"),
    ],
)
def test_a_bad_rollout_request_is_refused_and_starts_nothing(
    registered: RunningServer, body: bytes, message: str
) -> None:
    status, answer = call(registered, "POST", "/api/rollouts", body)
    assert status == 400, answer
    assert message in answer["error"], answer["error"]
    assert len(answer["error"]) < 2000
    assert registered.call(lambda: registered.fleet.store.list_rollouts()) == []


def test_a_good_request_still_starts_a_rollout(registered: RunningServer) -> None:
    status, answer = call(registered, "POST", "/api/rollouts", package(sha256="AB" * 32))
    assert status == 201, answer
    assert answer["target"]["sha256"] == "ab" * 32, "stored as the agents are offered it"
    status, answer = call(registered, "POST", f"/api/rollouts/{answer['id']}/abort", None)
    assert (status, answer["state"]) == (200, "aborted")
    status, answer = call(registered, "POST", "/api/rollouts", rollout(wave_timeout_s=30, waves=[100]))
    assert status == 201, answer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "must be a JSON object (a configs/ level document), got list"),
        (b'"tiers"', "must be a JSON object (a configs/ level document), got str"),
        (b"null", "must be a JSON object (a configs/ level document), got NoneType"),
        (b"{", "the request body is not JSON"),
        (b"", "the request body is empty"),
        (b'{"tiers": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "nests deeper than 32 levels"),
        (b'{"tiers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests deeper than 32 levels"),
        (b'{"tiers": NaN}', "NaN is not a JSON number"),
        (json.dumps({"tiers": {"agent": {"no_such_key": 1}}}).encode(), "the overrides do not render"),
    ],
)
def test_bad_agent_overrides_are_refused_and_change_nothing(
    registered: RunningServer, body: bytes, message: str
) -> None:
    uid = registered.call(lambda: registered.fleet.store.list_agents()[0].uid)
    before = registered.call(lambda: registered.fleet.store.get_agent(uid))
    status, answer = call(registered, "PUT", f"/api/agents/{uid}/overrides", body)
    assert status == 400, answer
    assert message in answer["error"], answer["error"]
    assert registered.call(lambda: registered.fleet.store.get_agent(uid)) == before


def test_overrides_for_an_unknown_agent_are_404(registered: RunningServer) -> None:
    status, answer = call(registered, "PUT", "/api/agents/no-such-agent/overrides", b"{}")
    assert (status, answer) == (404, {"error": "no agent no-such-agent"})
