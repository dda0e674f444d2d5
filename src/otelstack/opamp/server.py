"""The OpAMP server process: aiohttp serving OpAMP over WebSocket and HTTP on /v1/opamp, the REST API,
the fleet page, /metrics and /healthz.

Every OpAMP request must carry `Authorization: Bearer <token>` of an environment; it is checked before a
byte of protobuf is read, and the agent must report that environment. The REST API, the page and
/metrics take the admin token, or a browser session opened with it at /login (webui.py). Tokens are
compared in constant time and never logged.

On SIGTERM (or SIGINT) every WebSocket is closed with 1001 (going away) and the process exits within a
few seconds; agents reconnect to the restarted server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.errors import OtelstackError
from otelstack.opamp import api, metrics, protocol, webui
from otelstack.opamp.certificates import CaBundle, ClientCa
from otelstack.opamp.cli import SELECTOR_FIELDS, SELECTOR_KEYS_HELP
from otelstack.opamp.descriptors import AcceptErrorThrottle, connection_limit, open_files_limit, raise_open_files_limit
from otelstack.opamp.fleet import Fleet, FleetSettings, Session
from otelstack.opamp.remote_config import ConfigSource
from otelstack.opamp.rollout import RolloutError, matches
from otelstack.opamp.settings import ServerSettings
from otelstack.opamp.store import AgentRecord, FleetStore, new_server_id, open_store

log = logging.getLogger("otelstack.opamp")

FLEET: web.AppKey[Fleet] = web.AppKey("fleet", Fleet)
STATE: web.AppKey[ServerState] = web.AppKey("state")
# How long a stopping server waits for WebSocket close handshakes, then for requests still running: the
# process is gone within 5 s (the unit's TimeoutStopSec is far longer).
SHUTDOWN_TIMEOUT_S = 2.0
# How often the push loop deletes records that never described themselves (at most).
HOUSEKEEPING_INTERVAL_S = 60.0
# How often the replica driving a running rollout on a shared registry evaluates it: the reports of the
# agents connected to the other replicas reach it only through the database, not one by one.
SHARED_EVALUATION_S = 0.2


class ServerState:
    def __init__(self, settings: ServerSettings, tokens: dict[str, str], admin_token: str) -> None:
        self.settings = settings
        self.tokens = tokens
        self.admin_token = admin_token
        self.connections = 0
        # limits.max_connections, lowered to what the process's open-file limit allows
        self.max_connections = connection_limit(settings.limits.max_connections, open_files_limit())
        # instance UID -> its WebSocket, for pushes; and every open WebSocket, for the shutdown
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.websockets: set[web.WebSocketResponse] = set()
        # HTTP keep-alive connection (its transport) -> the agent session on it
        self.http_sessions: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()
        self.stopping = False


def environment_for(state: ServerState, token: str) -> str | None:
    found = None
    for environment, expected in state.tokens.items():
        if token and hmac.compare_digest(token.encode(), expected.encode()):
            found = environment
    return found


def _peer(request: web.Request) -> str:
    return request.remote or "?"


def _answer(fleet: Fleet, message: pb.AgentToServer, environment: str, session: Session) -> pb.ServerToAgent:
    """The fleet's answer; if handling the message fails, an error response asking the agent to retry
    later (logged once per agent and error) — the connection, and every other agent, carry on."""
    try:
        return fleet.handle(message, token_environment=environment, session=session)
    except Exception as exc:
        uid = protocol.uid_text(message.instance_uid or session.assigned_uid)
        fleet.errors.failure(f"handle:{uid}", exc, "agent %s: its message could not be handled", uid)
        reply = pb.ServerToAgent(instance_uid=message.instance_uid, capabilities=protocol.SERVER_CAPABILITIES)
        reply.error_response.type = pb.ServerErrorResponseType_Unavailable
        reply.error_response.error_message = "the server could not handle this message (it logged why); retry later"
        reply.error_response.retry_info.retry_after_nanoseconds = 30 * 10**9
        return reply


# --- OpAMP -----------------------------------------------------------------------------------------


async def opamp(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    environment = environment_for(state, webui.bearer_token(request))
    if environment is None:
        log.warning("OpAMP request from %s refused: missing or unknown bearer token", _peer(request))
        return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Bearer"})
    if state.connections >= state.max_connections:
        log.warning("OpAMP request from %s refused: %d connections open", _peer(request), state.connections)
        return web.Response(status=503, text="too many connections\n", headers={"Retry-After": "30"})
    state.connections += 1
    try:
        if request.method == "GET":
            return await _websocket(request, environment)
        return await _http(request, environment)
    finally:
        state.connections -= 1


async def _http(request: web.Request, environment: str) -> web.Response:
    fleet = request.app[FLEET]
    if (
        request.content_length is not None
        and request.content_length > request.app[STATE].settings.limits.max_message_bytes
    ):
        log.warning("OpAMP request from %s refused: %d bytes", _peer(request), request.content_length)
        return web.Response(status=413, text="message too large\n")
    try:
        body = await request.read()
        message = protocol.decode(body)
    except web.HTTPRequestEntityTooLarge:
        log.warning("OpAMP request from %s refused: message too large", _peer(request))
        return web.Response(status=413, text="message too large\n")
    except protocol.ProtocolError as exc:
        log.warning("OpAMP request from %s rejected: %s", _peer(request), exc)
        return web.Response(status=400, text=f"{exc}\n")
    state = request.app[STATE]
    session = state.http_sessions.get(request.transport) if request.transport is not None else None
    if session is None:
        session = Session(transport="http")
        if request.transport is not None:
            state.http_sessions[request.transport] = session
    reply = _answer(fleet, message, environment, session)
    return web.Response(body=protocol.encode(reply), content_type=protocol.CONTENT_TYPE)


async def _websocket(request: web.Request, environment: str) -> web.WebSocketResponse:
    fleet, state = request.app[FLEET], request.app[STATE]
    limits = state.settings.limits
    ws = web.WebSocketResponse(
        max_msg_size=limits.max_message_bytes, autoping=True, compress=limits.websocket_compression
    )
    await ws.prepare(request)
    if state.stopping:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        return ws
    state.websockets.add(ws)
    session = Session(transport="websocket")
    uid = ""
    try:
        async for frame in ws:
            if frame.type == WSMsgType.BINARY:
                try:
                    message = protocol.decode_ws(frame.data)
                except protocol.ProtocolError as exc:
                    log.warning("closing OpAMP connection from %s: %s", _peer(request), exc)
                    await ws.close(code=1002, message=b"protocol error")
                    break
                if session.fresh and fleet.store.shared:
                    await _load(fleet, message, session)
                reply = _answer(fleet, message, environment, session)
                if reply.HasField("error_response"):
                    await ws.send_bytes(protocol.encode_ws(reply))
                    if reply.error_response.type == pb.ServerErrorResponseType_Unavailable:
                        continue  # the agent retries later on this connection
                    await ws.close(code=1008, message=b"refused")
                    break
                new_uid = reply.agent_identification.new_instance_uid or message.instance_uid
                if protocol.uid_text(new_uid) != uid:
                    state.sockets.pop(uid, None)
                    uid = protocol.uid_text(new_uid)
                    state.sockets[uid] = ws
                await ws.send_bytes(protocol.encode_ws(reply))
            elif frame.type == WSMsgType.TEXT:
                log.warning("closing OpAMP connection from %s: text frame (OpAMP frames are binary)", _peer(request))
                await ws.close(code=1003, message=b"binary frames only")
                break
            elif frame.type == WSMsgType.ERROR:
                log.warning("OpAMP connection from %s ended: %s", _peer(request), ws.exception())
                break
    finally:
        state.websockets.discard(ws)
        if uid and state.sockets.get(uid) is ws:  # not when the agent already reconnected on another socket
            state.sockets.pop(uid, None)
            try:
                fleet.mark_disconnected(uid)
            except Exception:
                fleet.errors.error(f"disconnect:{uid}", "agent %s: could not record its disconnection", uid)
    return ws


async def _load(fleet: Fleet, message: pb.AgentToServer, session: Session) -> None:
    """The first message on a connection: its agent's record is read from a shared registry in a worker
    thread, so the event loop serves other agents meanwhile (registrations and reconnections arrive by the
    thousand after a replica restarts). An agent that asks for a UID has no record to read."""
    if not message.instance_uid or message.flags & pb.AgentToServerFlags_RequestInstanceUid:
        return
    try:
        uid = protocol.uid_text(message.instance_uid)
        await asyncio.to_thread(fleet.store.load, uid)
    except Exception as exc:  # handling the message reads it the usual way
        fleet.errors.failure("load", exc, "an agent's record could not be read ahead; read while handling it")
        return
    session.loaded = uid


async def push_loop(app: web.Application, interval_s: float = 0.5) -> None:
    """Advance rollouts on time, push new offers to agents connected by WebSocket without waiting for
    their next heartbeat, and delete records that never completed. An error in one step, or in one
    agent's push, is logged once and skipped: the loop serves everyone else for the life of the process."""
    fleet, state = app[FLEET], app[STATE]
    pushed: tuple[Any, ...] = ()
    housekeeping_s = min(HOUSEKEEPING_INTERVAL_S, fleet.settings.incomplete_agent_ttl_s / 2)
    housekept = time.monotonic()
    woken = asyncio.Event()  # another replica announced a change: push now, not at the next tick
    fleet.wake = woken.set
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), _tick(fleet, interval_s))
        woken.clear()
        try:
            fleet.rollouts.evaluate()
        except Exception as exc:
            fleet.errors.failure("evaluate", exc, "push loop: the running rollout could not be evaluated")
        if time.monotonic() - housekept >= housekeeping_s:
            housekept = time.monotonic()
            try:
                fleet.expire_incomplete()
            except Exception as exc:
                fleet.errors.failure("expire", exc, "push loop: incomplete records could not be expired")
        try:
            generation = fleet.generation()
        except Exception as exc:
            fleet.errors.failure("generation", exc, "push loop: cannot tell what changed")
            continue
        if generation == pushed and not fleet.dirty:
            continue
        # The agents a wave released, when that is all that changed; everyone when what agents should run
        # may have changed otherwise; and the agents another replica changed.
        released = _released_since(fleet, pushed, generation) if generation != pushed else set()
        if released is None:
            targets = list(state.sockets.items())
        else:
            wanted = released | fleet.dirty
            targets = [(uid, state.sockets[uid]) for uid in wanted if uid in state.sockets]
        pushed = generation
        fleet.dirty.clear()
        for uid, ws in targets:
            try:
                reply = fleet.push(uid)
            except Exception as exc:
                fleet.errors.failure(f"push:{uid}", exc, "push to agent %s failed; skipped", uid)
                continue
            if reply is None or ws.closed:
                continue
            try:
                await ws.send_bytes(protocol.encode_ws(reply))
            except (ConnectionError, RuntimeError) as exc:  # the agent went away meanwhile
                log.debug("push to %s: %s", uid, exc)


def _tick(fleet: Fleet, interval_s: float) -> float:
    """The push loop's next wait: shorter while this replica drives a running rollout that agents of other
    replicas take part in (it reads their reports from the registry, one narrow query per evaluation)."""
    try:
        if fleet.store.shared and fleet.rollouts.driving and fleet.rollouts.running() is not None:
            return min(interval_s, SHARED_EVALUATION_S)
    except Exception as exc:
        fleet.errors.failure("tick", exc, "push loop: cannot tell whether a rollout runs")
    return interval_s


def _released_since(fleet: Fleet, before: tuple[Any, ...], now: tuple[Any, ...]) -> set[str] | None:
    """The agents the running rollout released between two generations (``Fleet.generation``) when its
    waves are all that changed (its start, its next waves); None when anything else may have."""
    if not before or before[0] != now[0] or before[3] != now[3] or before[1] not in ("", now[1]):
        return None
    rollout = fleet.rollouts.running()
    if rollout is None or rollout.id != now[1] or rollout.current_wave != now[2]:
        return None
    first = before[2] + 1 if before[1] == now[1] else 0
    return {uid for wave in rollout.waves[first : now[2] + 1] for uid in wave}


async def close_websockets(app: web.Application) -> None:
    """On shutdown: every WebSocket gets a close frame with 1001 (going away), so agents reconnect to the
    restarted server at once instead of waiting for a dead connection to time out."""
    state = app[STATE]
    state.stopping = True
    sockets = [ws for ws in state.websockets if not ws.closed]
    if not sockets:
        return
    log.info("closing %d WebSocket connection(s): the server is stopping", len(sockets))
    closing = [
        asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")) for ws in sockets
    ]
    done, pending = await asyncio.wait(closing, timeout=SHUTDOWN_TIMEOUT_S)
    for task in pending:  # the agent did not answer the close frame in time
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.debug("closing a WebSocket: %s", task.exception())


# --- REST API, metrics (the page and its login: webui.py) ------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, sort_keys=True, default=str))


async def list_agents(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    return _json([fleet.view(a) for a in fleet.store.list_agents()])


MIN_UID_PREFIX = 4


def _find_agent(fleet: Fleet, given: str) -> AgentRecord | web.Response:
    """The agent whose instance UID is ``given``, or starts with it (a unique prefix of at least
    MIN_UID_PREFIX characters); else the 404 (unknown) or 400 (ambiguous, with the candidates) to answer."""
    agent = fleet.store.get_agent(given)
    if agent is not None:
        return agent
    prefix = given.strip().lower()
    if len(prefix) < MIN_UID_PREFIX:
        return _json(
            {"error": f"no agent with instance UID {given!r} (a prefix needs {MIN_UID_PREFIX}+ characters)"}, 404
        )
    found = [a for a in fleet.store.list_agents() if a.uid.lower().startswith(prefix)]
    if len(found) == 1:
        return found[0]
    if not found:
        return _json({"error": f"no agent with instance UID {given!r} or one starting with it"}, 404)
    return _json(
        {
            "error": f"{len(found)} agents have an instance UID starting with {given!r}; give more of it",
            "candidates": [a.uid for a in found[:20]] + ([f"… {len(found) - 20} more"] if len(found) > 20 else []),
        },
        400,
    )


async def show_agent(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    agent = _find_agent(fleet, request.match_info["uid"])
    if isinstance(agent, web.Response):
        return agent
    return _json(fleet.view(agent))


async def restart_agent(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    found = _find_agent(fleet, request.match_info["uid"])
    if isinstance(found, web.Response):
        return found
    agent = fleet.request_restart(found.uid)
    return _json({"uid": agent.uid, "pending_command": agent.pending_command}, 202)


async def _body(request: web.Request) -> Any:
    """The request body as JSON (api.parse_json), or ApiError."""
    return api.parse_json(await request.read())


async def forget_agent(request: web.Request) -> web.Response:
    """Delete an agent's record (its full instance UID): the agent registers again, with the token it
    then presents, when it next speaks — how an agent moves to another environment."""
    fleet, uid = request.app[FLEET], request.match_info["uid"]
    if not fleet.forget(uid):
        return _json({"error": f"no agent with instance UID {uid!r} (give the full UID to delete a record)"}, 404)
    log.info("agent %s: record deleted through the API", uid)
    return _json({"deleted": uid})


async def put_overrides(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    try:
        overrides = api.overrides_request(await _body(request))
    except api.ApiError as exc:
        return _json({"error": str(exc)}, 400)
    if fleet.store.get_agent(request.match_info["uid"]) is None:
        return _json({"error": f"no agent {request.match_info['uid']}"}, 404)
    try:
        agent = fleet.set_overrides(request.match_info["uid"], overrides)
    except KeyError:
        return _json({"error": f"no agent {request.match_info['uid']}"}, 404)
    except (ValueError, TypeError, RecursionError) as exc:
        return _json({"error": f"the overrides do not render: {exc}"}, 400)
    return _json(fleet.view(agent))


async def list_baselines(request: web.Request) -> web.Response:
    """The scoped baselines (fleet default first): what agents run outside rollouts."""
    return _json(request.app[FLEET].rollouts.baselines())


def _rollout_view(fleet: Fleet, rollout: Any) -> dict[str, Any]:
    return {
        "id": rollout.id,
        "kind": rollout.kind,
        "state": rollout.state,
        "reason": rollout.reason,
        "selector": rollout.selector,
        "target": rollout.target,
        "wave": rollout.current_wave,
        "waves": [len(w) for w in rollout.waves],
        "progress": round(fleet.rollouts.progress(rollout), 4),
        "created_at": rollout.created_at,
        "finished_at": rollout.finished_at,
    }


async def list_rollouts(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    return _json([_rollout_view(fleet, r) for r in fleet.store.list_rollouts()])


async def show_rollout(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    rollout = fleet.store.get_rollout(request.match_info["id"])
    if rollout is None:
        return _json({"error": f"no rollout with id {request.match_info['id']!r}"}, 404)
    return _json(_rollout_view(fleet, rollout))


def _selector_problem(agents: list[AgentRecord], selector: Any) -> str | None:
    """Why ``selector`` selects nothing, naming the keys a selector may use, or None when it selects agents.
    (The rollout engine refuses an empty selection too; this answer says what to change.)"""
    if not isinstance(selector, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
    ):
        return f"selector must be an object of key: value strings; allowed keys: {SELECTOR_KEYS_HELP}"
    attributes = sorted({key for agent in agents for key in agent.attributes})
    allowed = (
        f"{', '.join(SELECTOR_FIELDS)}, or an attribute the agents report: {', '.join(attributes) or '(none yet)'}"
    )
    unknown = [key for key in selector if key not in SELECTOR_FIELDS and key not in attributes]
    if unknown:
        return f"unknown selector key {', '.join(map(repr, unknown))}; allowed keys: {allowed}"
    if any(matches(agent, selector) for agent in agents):
        return None
    if not agents:
        return f"no agent matches {selector}: no agent has registered with the server yet"
    present = "; ".join(
        f"{field}: {', '.join(sorted({str(getattr(a, field)) for a in agents if getattr(a, field)})) or '(none)'}"
        for field in SELECTOR_FIELDS
    )
    return f"no agent matches {selector}; the agents have {present}. Allowed keys: {allowed}"


async def start_rollout(request: web.Request) -> web.Response:
    fleet, state = request.app[FLEET], request.app[STATE]
    try:
        body = await _body(request)
        if not isinstance(body, dict):
            return _json({"error": "the request body must be a JSON object"}, 400)
        # Listed once, with the fields a selection needs: checked here, selected from by the rollout.
        registry = fleet.store.list_selectable()
        problem = _selector_problem(registry, body.get("selector", {}))
        if problem is not None:
            return _json({"error": problem}, 400)
        checked = api.rollout_request(body)
        rollout = fleet.rollouts.start(
            checked.kind,
            dict(checked.selector),
            dict(checked.target),
            canary=checked.canary,
            waves=list(checked.waves),
            wave_timeout_s=checked.wave_timeout_s or state.settings.wave_timeout_s,
            registry=registry,
        )
    except (api.ApiError, RolloutError) as exc:
        return _json({"error": str(exc)}, 400)
    log.info(
        "rollout %s started: %s %s, waves %s", rollout.id, rollout.kind, rollout.target, [len(w) for w in rollout.waves]
    )
    return _json(_rollout_view(fleet, rollout), 201)


async def abort_rollout(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    if fleet.store.get_rollout(request.match_info["id"]) is None:
        return _json({"error": f"no rollout with id {request.match_info['id']!r}"}, 404)
    try:
        rollout = fleet.rollouts.abort(request.match_info["id"])
    except RolloutError as exc:  # it is not running (any more)
        return _json({"error": str(exc)}, 409)
    return _json(_rollout_view(fleet, rollout))


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(text=metrics.exposition(request.app[FLEET]), content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


# --- assembly --------------------------------------------------------------------------------------


def build_app(settings: ServerSettings, store: FleetStore | None = None) -> web.Application:
    tokens = {environment: secret.value() for environment, secret in settings.tokens.items()}
    server_id = new_server_id() if settings.postgresql is not None else ""
    state = ServerState(settings, tokens, settings.admin_token.value())
    client_ca = None
    if settings.client_ca is not None:
        ca = settings.client_ca
        client_ca = ClientCa(ca.cert_file, ca.key_file, ca.valid_days)
    fleet = Fleet(
        store or open_store(settings, server_id),
        FleetSettings(
            configs_dir=settings.configs_dir,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            client_ca=client_ca,
            opamp_url=settings.offered_url,
            server_ca=CaBundle(settings.opamp_ca_file) if settings.opamp_ca_file is not None else None,
            tokens=tokens,
            client_certificates_required=settings.tls is not None and settings.tls.client_ca_file is not None,
            max_agents_per_environment=settings.limits.max_agents_per_environment,
            incomplete_agent_ttl_s=settings.limits.incomplete_agent_ttl_s,
            server_id=server_id,
        ),
        ConfigSource(settings.namespaces),
    )
    app = web.Application(middlewares=[webui.admin_auth], client_max_size=settings.limits.max_message_bytes)
    app[FLEET] = fleet
    app[STATE] = state
    app.router.add_route("GET", "/v1/opamp", opamp)
    app.router.add_route("POST", "/v1/opamp", opamp)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_get("/api/agents/{uid}", show_agent)
    app.router.add_post("/api/agents/{uid}/restart", restart_agent)
    app.router.add_put("/api/agents/{uid}/overrides", put_overrides)
    app.router.add_delete("/api/agents/{uid}", forget_agent)
    app.router.add_get("/api/rollouts", list_rollouts)
    app.router.add_get("/api/baselines", list_baselines)
    app.router.add_post("/api/rollouts", start_rollout)
    app.router.add_get("/api/rollouts/{id}", show_rollout)
    app.router.add_post("/api/rollouts/{id}/abort", abort_rollout)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/healthz", healthz)
    webui.setup(
        app,
        webui.WebLogin(
            admin_token=state.admin_token,
            sessions=webui.Sessions(fleet.store, settings.page.session_lifetime_s, settings.page.max_sessions),
            secure=settings.tls is not None,
            throttle=webui.LoginThrottle(),
        ),
    )

    async def background(app: web.Application) -> AsyncIterator[None]:
        asyncio.get_running_loop().set_exception_handler(AcceptErrorThrottle())
        reset = fleet.reset_connections()
        if reset:
            log.info("%d agent(s) were marked connected by the previous server process; now disconnected", reset)
        tasks = [asyncio.create_task(push_loop(app))]
        if settings.postgresql is not None:  # replicas: hear the others, take the rollout lock in turn
            from otelstack.opamp.replicas import Replicas

            tasks.append(asyncio.create_task(Replicas(fleet, settings.postgresql, server_id).run()))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        fleet.store.close()

    app.cleanup_ctx.append(background)
    app.on_shutdown.append(close_websockets)
    return app


def ssl_context(settings: ServerSettings) -> ssl.SSLContext | None:
    if settings.tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.tls.cert_file, settings.tls.key_file)
    if settings.tls.client_ca_file is not None:
        ctx.load_verify_locations(settings.tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check(settings: ServerSettings) -> list[str]:
    """What `serve` would need, checked without serving: secrets readable, TLS files loadable, the
    configs hierarchy present. Raises OtelstackError (or OSError/SSLError) naming what is wrong."""
    for environment, secret in settings.tokens.items():
        secret.value()
        if not (settings.configs_dir / environment).is_dir():
            raise OtelstackError(
                f"configs_dir {settings.configs_dir} has no {environment}/ for the token of {environment}"
            )
    settings.admin_token.value()
    if settings.postgresql is not None and settings.postgresql.password is not None:
        settings.postgresql.password.value()
    try:
        ssl_context(settings)
    except (OSError, ssl.SSLError) as exc:
        raise OtelstackError(f"tls: cannot load the certificate, key or CA: {exc}") from exc
    transport = "plaintext (lab)"
    if settings.tls is not None:
        transport = "TLS with client certificates" if settings.tls.client_ca_file else "TLS"
    environments = ", ".join(sorted(settings.tokens))
    return [f"settings ok: environments {environments}, {transport}, listen {settings.listen}"]


def serve(settings: ServerSettings) -> None:
    host, port = settings.host_port
    raise_open_files_limit()
    app = build_app(settings)
    log.info(
        "otelstack OpAMP server on %s://%s:%d/v1/opamp (environments: %s)",
        "wss" if settings.tls else "ws",
        host,
        port,
        ", ".join(sorted(settings.tokens)),
    )
    context = ssl_context(settings)
    if context is not None and settings.tls is not None:
        tls = settings.tls

        def reload_certificates(*_: object) -> None:
            """SIGHUP (systemctl reload): new handshakes use the renewed certificate; connections stay."""
            try:
                context.load_cert_chain(tls.cert_file, tls.key_file)
                if tls.client_ca_file is not None:
                    context.load_verify_locations(tls.client_ca_file)
                log.info("TLS certificate reloaded from %s", tls.cert_file)
            except (OSError, ssl.SSLError) as exc:
                log.error("TLS certificate reload failed, keeping the loaded one: %s", exc)

        signal.signal(signal.SIGHUP, reload_certificates)
    web.run_app(
        app,
        host=host,
        port=port,
        ssl_context=context,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    log.info("otelstack OpAMP server stopped")
