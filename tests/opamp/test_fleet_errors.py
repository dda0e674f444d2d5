"""`otelstack fleet …` with bad input or a wrong server: one clear line (no traceback) saying what to do,
and nothing changed on the server."""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from otelstack.cli import main
from otelstack.opamp import cli as fleet_cli
from otelstack.opamp.rollout import matches
from otelstack.opamp.server import build_app, ssl_context
from otelstack.opamp.store import AgentRecord
from tests.integration.pki_helpers import LabPki, make_pki
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, RunningServer, free_port, official_client, settings


@pytest.fixture()
def registered(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    monkeypatch.setenv("OTELSTACK_OPAMP_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv("OTELSTACK_OPAMP_URL", raising=False)
    for n in range(3):
        peer = official_client(server.http_url, f"vm-{n}")
        peer.send(peer.build_full_state_message())
    return server


def fleet(server: RunningServer | str, *args: str) -> list[str]:
    url = server if isinstance(server, str) else server.http_url
    return ["fleet", "--server", url, *args]


def error_of(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.startswith("error: "), captured.err
    return " ".join(captured.err.split())


def rollouts(server: RunningServer) -> list[object]:
    return list(server.call(lambda: server.fleet.store.list_rollouts()))


# --- selectors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("selector", ["environment", "=dev", "environment=", "  "])
def test_a_selector_that_is_not_key_value_is_refused_before_asking_the_server(
    registered: RunningServer, capsys: pytest.CaptureFixture[str], selector: str
) -> None:
    assert main(fleet(registered, "rollout", "start", "--selector", selector)) == 2
    err = error_of(capsys)
    assert "selector must be key=value; allowed keys: environment, region, profile" in err
    assert rollouts(registered) == []


def test_a_selector_key_given_twice_is_refused(registered: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rollout", "start", "--selector", "environment=dev", "--selector", "environment=prod"]
    assert main(fleet(registered, *args)) == 2
    assert "environment is given twice" in error_of(capsys)
    assert rollouts(registered) == []


def test_an_unknown_selector_key_lists_the_allowed_keys(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(fleet(registered, "rollout", "start", "--selector", "env=prod")) == 2
    err = error_of(capsys)
    assert "HTTP 400: unknown selector key 'env'; allowed keys: environment, region, profile" in err
    assert "deployment.environment.name" in err and "service.instance.id" in err, "attributes the agents report"
    assert rollouts(registered) == []


def test_a_selector_matching_no_agent_says_what_the_agents_have(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(fleet(registered, "rollout", "start", "--selector", "environment=prod")) == 2
    err = error_of(capsys)
    assert "no agent matches {'environment': 'prod'}; the agents have environment: dev" in err
    assert "Allowed keys: environment, region, profile, or an attribute the agents report: cloud.region" in err
    assert rollouts(registered) == []


def test_a_selector_on_an_attribute_still_selects(
    registered: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    revision = tmp_path / "r2"
    shutil.copytree(CONFIGS, revision)
    args = ["rollout", "start", "--configs", str(revision), "--selector", "service.instance.id=vm-1"]
    assert main(fleet(registered, *args)) == 0, capsys.readouterr().err
    assert "(config): running, wave 1/1" in capsys.readouterr().out


def test_the_selector_fields_are_the_ones_the_rollout_engine_matches() -> None:
    agent = AgentRecord(uid="u", environment="e", region="r", profile="p", attributes={"x": "y"})
    for key, value in zip(fleet_cli.SELECTOR_FIELDS, ("e", "r", "p"), strict=True):
        assert matches(agent, {key: value}) and not matches(agent, {key: "other"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--waves", "25,x"], "--waves must be comma-separated percentages such as 25,50,100, got '25,x'"),
        (["--waves", "50,25"], "waves must be increasing percentages in 1..100"),
        (["--version", "0.160.0"], "--version, --url and --sha256 describe a package: give them with --package"),
        (["--package", "--version", "0.160.0"], "--package needs --url, --sha256"),
        (
            ["--package", "--version", "0.160.0", "--url", "https://m/x.tgz", "--sha256", "abc"],
            "--sha256 must be 64 hexadecimal digits, got 'abc'",
        ),
    ],
)
def test_bad_rollout_options_are_refused(
    registered: RunningServer, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(fleet(registered, "rollout", "start", "--selector", "environment=dev", *args)) == 2
    assert message in error_of(capsys)
    assert rollouts(registered) == []


def test_the_server_refuses_a_package_rollout_with_a_bad_sha256(registered: RunningServer) -> None:
    body = {
        "kind": "package",
        "selector": {"environment": "dev"},
        "target": {"name": "otelcol-contrib", "version": "0.160.0", "url": "https://m/x.tgz", "sha256": "zz" * 32},
    }
    request = urllib.request.Request(
        registered.http_url + "/api/rollouts",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "sha256 must be 64 hexadecimal digits" in json.loads(refused.value.read())["error"]
    assert rollouts(registered) == []


# --- the server's address ----------------------------------------------------------------------------


def test_the_default_server_is_named_when_unreachable(
    registered: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = f"https://127.0.0.1:{free_port()}"
    monkeypatch.setattr(fleet_cli, "DEFAULT_SERVER", nobody)
    assert main(["fleet", "list"]) == 2
    err = error_of(capsys)
    assert f"cannot reach the OpAMP server at {nobody} (the default; give the server with --server URL" in err
    assert "OTELSTACK_OPAMP_URL" in err and "Connection refused" in err


def test_a_server_from_the_environment_is_named(
    registered: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OTELSTACK_OPAMP_URL", nobody)
    assert main(["fleet", "list"]) == 2
    assert f"cannot reach the OpAMP server at {nobody} (from OTELSTACK_OPAMP_URL)" in error_of(capsys)
    monkeypatch.setenv("OTELSTACK_OPAMP_URL", registered.http_url)
    assert main(["fleet", "list"]) == 0
    assert "3 agents" in capsys.readouterr().out


@pytest.mark.parametrize("url", ["127.0.0.1:{port}", "localhost:{port}", "ws://127.0.0.1:{port}", "http://"])
def test_a_server_url_without_http_or_https_is_refused(
    registered: RunningServer, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    given = url.format(port=registered.port)
    assert main(fleet(given, "list")) == 2
    assert f"--server needs http:// or https://, got '{given}'" in error_of(capsys)


def test_the_environment_variable_is_named_when_it_has_no_scheme(
    registered: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTELSTACK_OPAMP_URL", f"127.0.0.1:{registered.port}")
    assert main(["fleet", "list"]) == 2
    assert "OTELSTACK_OPAMP_URL needs http:// or https://" in error_of(capsys)


def test_https_against_a_plain_http_server_is_explained(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://127.0.0.1:{registered.port}"
    assert main(fleet(url, "list")) == 2
    err = error_of(capsys)
    assert f"the server at {url} does not speak TLS; use http:// or enable TLS on the server" in err


@pytest.mark.parametrize("suffix", ["/v1/opamp", "/v1/opamp/"])
def test_the_opamp_endpoint_given_as_the_server_is_explained(
    registered: RunningServer, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    assert main(fleet(registered.http_url + suffix, "list")) == 2
    err = error_of(capsys)
    assert "--server is the server's base URL, not its OpAMP endpoint" in err
    assert f"use '{registered.http_url}'" in err


def test_another_path_under_the_server_is_explained(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(fleet(registered.http_url + "/opamp", "list")) == 2
    err = error_of(capsys)
    assert "HTTP 404" in err and "the base URL of an otelstack OpAMP server" in err


def test_a_server_that_does_not_answer_json_is_explained(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        assert main(fleet(f"http://127.0.0.1:{other.server_port}", "list")) == 2
    finally:
        other.shutdown()
    assert "with something that is not JSON: is it an otelstack OpAMP server?" in error_of(capsys)


def test_a_wrong_admin_token_is_explained(
    registered: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTELSTACK_OPAMP_ADMIN_TOKEN", "wrong")
    assert main(fleet(registered, "list")) == 2
    assert (
        "refused the admin token from OTELSTACK_OPAMP_ADMIN_TOKEN (401): check it matches the server's admin token"
        in error_of(capsys)
    )


# --- TLS -------------------------------------------------------------------------------------------


@pytest.fixture()
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, LabPki]]:
    monkeypatch.setenv("OTELSTACK_OPAMP_ADMIN_TOKEN", ADMIN_TOKEN)
    pki = make_pki(tmp_path / "pki")
    server_settings = settings(
        tmp_path, free_port(), tls={"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(server_settings), access_log=None, shutdown_timeout=2.0)
    ready = threading.Event()
    host, port = server_settings.host_port

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, host, port, ssl_context=ssl_context(server_settings)).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield port, pki
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


def test_tls_server_untrusted_certificate_and_plain_http_are_explained(
    tls_server: tuple[int, LabPki], capsys: pytest.CaptureFixture[str]
) -> None:
    port, pki = tls_server
    assert main(fleet(f"https://127.0.0.1:{port}", "list")) == 2
    err = error_of(capsys)
    assert "is not trusted" in err and "pass --ca-file with the CA that signed it" in err
    assert main(fleet(f"http://127.0.0.1:{port}", "list")) == 2
    assert "closed the connection without answering: if it serves TLS, use https://" in error_of(capsys)
    assert main(fleet(f"https://127.0.0.1:{port}", "--ca-file", str(pki.server_key.parent / "nope.pem"), "list")) == 2
    assert "--ca-file" in error_of(capsys)
    assert main(["fleet", "--server", f"https://127.0.0.1:{port}", "--ca-file", str(pki.ca), "list"]) == 0
    assert "0 agents" in capsys.readouterr().out


# --- rollouts and agents by id ---------------------------------------------------------------------


def test_aborting_an_unknown_rollout_is_404(registered: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(fleet(registered, "rollout", "abort", "0123456789ab")) == 2
    assert "HTTP 404: no rollout with id '0123456789ab'" in error_of(capsys)
    assert main(fleet(registered, "rollout", "status", "0123456789ab")) == 2
    assert "HTTP 404: no rollout with id '0123456789ab'" in error_of(capsys)
    assert rollouts(registered) == []


def put_agents(server: RunningServer, *uids: str) -> None:
    def store() -> None:
        for uid in uids:
            server.fleet.store.put_agent(AgentRecord(uid=uid, environment="dev", profile="agent-vm"))

    server.call(store)


def test_show_and_restart_take_a_unique_uid_prefix(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    put_agents(registered, "abcd1234-0000-4000-8000-000000000001", "abcd5678-0000-4000-8000-000000000002")
    assert main(fleet(registered, "show", "abcd12")) == 0
    assert json.loads(capsys.readouterr().out)["uid"] == "abcd1234-0000-4000-8000-000000000001"
    assert main(fleet(registered, "restart", "ABCD56")) == 0
    assert "restart requested for abcd5678-0000-4000-8000-000000000002" in capsys.readouterr().out


def test_an_ambiguous_uid_prefix_lists_the_candidates(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    put_agents(registered, "abcd1234-0000-4000-8000-000000000001", "abcd5678-0000-4000-8000-000000000002")
    assert main(fleet(registered, "show", "abcd")) == 2
    err = error_of(capsys)
    assert "2 agents have an instance UID starting with 'abcd'; give more of it" in err
    assert "abcd1234-0000-4000-8000-000000000001" in err and "abcd5678-0000-4000-8000-000000000002" in err
    assert main(fleet(registered, "restart", "abcd")) == 2
    assert "give more of it" in error_of(capsys)
    pending = registered.call(lambda: [a.pending_command for a in registered.fleet.store.list_agents()])
    assert set(pending) == {""}, "an ambiguous restart restarts nothing"


def test_an_unknown_or_too_short_uid_is_a_clear_404(
    registered: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    put_agents(registered, "abcd1234-0000-4000-8000-000000000001")
    assert main(fleet(registered, "show", "ffff")) == 2
    assert "HTTP 404: no agent with instance UID 'ffff' or one starting with it" in error_of(capsys)
    assert main(fleet(registered, "show", "abc")) == 2
    assert "no agent with instance UID 'abc' (a prefix needs 4+ characters)" in error_of(capsys)
    assert main(fleet(registered, "show", "a/b?c")) == 2
    assert "HTTP 404: no agent with instance UID 'a/b?c'" in error_of(capsys)
