"""A Kubernetes API server with etcd on loopback, for the stack tests, and small HTTPS helpers to talk to it.

The programs are the real ones, built from their Go modules by `make binaries` (otelstack dist kubetools)
and linked into `.cache/bin/`: `etcd`, `kube-apiserver`, `pulumi`, `pulumi-language-python` (+ its exec
script) and `pulumi-resource-kubernetes`. `start_cluster()` makes a CA, a serving certificate for
127.0.0.1, an admin client certificate in group `system:masters` and a service-account key pair (with the
`cryptography` package), starts etcd and the API server on free loopback ports with
`--authorization-mode=RBAC`, waits for /readyz, writes a kubeconfig and applies the pinned CRDs
(cert-manager, OpenTelemetry Operator; read from their Go modules).

There is no kube-controller-manager, scheduler or kubelet: pods never run (so Pulumi's readiness waits
must be off: `pulumi.com/skipAwait: "true"` on each object), no garbage collector clears the
`foregroundDeletion` finalizer that the provider's default Foreground delete adds (so each object also
needs `pulumi.com/deletionPropagationPolicy: "background"`, or `pulumi destroy` waits for ever; both are
in NO_NODES_ANNOTATIONS), no default ServiceAccount or
kube-root-ca.crt ConfigMap appears in a namespace, and a deleted namespace stays `Terminating` (its
`kubernetes` finalizer is never removed). Tests therefore use a namespace name of their own per test,
check emptiness with `list_namespace(ns)`, and may call `finalize_namespace(ns)` (which does what the
namespace controller would do once the namespace is empty) to make a deleted namespace go away.

Reuse from other tests (the session fixture `cluster` in tests/stacks/conftest.py yields a `Cluster`):
    cluster.get(path)                      GET, parsed JSON (ApiError on a non-2xx answer)
    cluster.apply(obj, dry_run=…)          server-side apply of one object (fieldValidation=Strict)
    cluster.apply_dry_run(objs, create_namespaces=())  server-side apply dry-run of many; the answers
    cluster.list_namespace(ns)             every object left in a namespace, as "Kind/name"
    cluster.left_after_destroy(ns)         the same without the API server's own Events
    cluster.delete(obj) / finalize_namespace(ns)
    cluster.pulumi_env(workdir)            the environment for running `pulumi` against this cluster
    pulumi_plugins()                       the `plugins:` block of a Pulumi.yaml naming the built programs
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.pki_helpers import ThrowawayCa, common_name, pem_key

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("OTELSTACK_BIN", ROOT / ".cache" / "bin"))
VENV_BIN = ROOT / ".venv" / "bin"
CLUSTER_PROGRAMS = ("etcd", "kube-apiserver")
PULUMI_PROGRAMS = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-kubernetes")
PASSPHRASE = "otelstack-loopback-test"  # the local backend's secrets passphrase (test stacks only)
START_TIMEOUT = 120.0
TOO_MANY_REQUESTS_RETRIES = 30
# What a Pulumi program needs on every object to run against this cluster (see the module's docstring).
NO_NODES_ANNOTATIONS = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagationPolicy": "background"}


def missing(programs: Iterable[str]) -> list[str]:
    """The programs not (or no longer) present in .cache/bin."""
    return [name for name in programs if not (BIN / name).exists()]


def skip_reason(programs: Iterable[str]) -> str | None:
    absent = missing(programs)
    if not absent:
        return None
    return f"{', '.join(absent)} not built: run `make binaries` (otelstack dist kubetools --link .cache/bin)"


class ApiError(Exception):
    """A non-2xx answer of the API server; ``status`` is its Status object (message, reason, code)."""

    def __init__(self, code: int, status: dict[str, Any]) -> None:
        self.code = code
        self.status = status
        super().__init__(f"{code} {status.get('reason', '')}: {status.get('message', status)}")


# --- certificates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def make_pki(directory: Path) -> Pki:
    """A CA, a serving certificate for 127.0.0.1/localhost, an admin client certificate (system:masters)
    and a service-account signing key pair, all written into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = ThrowawayCa.new("otelstack-test-ca", days=1)
    serving = ca.issue(common_name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH)
    admin_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "otelstack-test-admin"),
        ]
    )
    admin = ca.issue(admin_name, ExtendedKeyUsageOID.CLIENT_AUTH, sans=())
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca.cert.public_bytes(serialization.Encoding.PEM),
        "serving.crt": serving[0].public_bytes(serialization.Encoding.PEM),
        "serving.key": pem_key(serving[1]),
        "admin.crt": admin[0].public_bytes(serialization.Encoding.PEM),
        "admin.key": pem_key(admin[1]),
        "sa.key": pem_key(sa),
        "sa.pub": sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)
    d = directory
    return Pki(
        d / "ca.crt", d / "serving.crt", d / "serving.key", d / "admin.crt", d / "admin.key", d / "sa.key", d / "sa.pub"
    )


# --- processes --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a program started here (kill it after 15 s), unless it has ended."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# --- the cluster ---------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    url: str
    workdir: Path
    pki: Pki
    kubeconfig: Path
    logs: dict[str, Path]
    _context: ssl.SSLContext = field(repr=False, default_factory=ssl.create_default_context)
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict, repr=False)
    # The API server's `Warning` headers (e.g. Pod Security's "would violate PodSecurity …"), per request path.
    warnings: list[tuple[str, str]] = field(default_factory=list, repr=False)

    # -- plain HTTPS --
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        for attempt in range(TOO_MANY_REQUESTS_RETRIES + 1):
            try:
                with urllib.request.urlopen(req, context=self._context, timeout=timeout) as answer:
                    raw = answer.read()
                    self.warnings += [(path, text) for text in answer.headers.get_all("Warning") or []]
                break
            except urllib.error.HTTPError as failed:
                # 429 while a new resource's watch cache initialises ("storage is (re)initializing")
                if failed.code == 429 and attempt < TOO_MANY_REQUESTS_RETRIES:
                    time.sleep(min(float(failed.headers.get("Retry-After") or 0.5), 2.0))
                    continue
                raw = failed.read()
                try:
                    status = json.loads(raw)
                except ValueError:
                    status = {"message": raw.decode(errors="replace")}
                raise ApiError(failed.code, status) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)

    # -- discovery --
    def _discover(self) -> None:
        self._resources.clear()
        groups: list[str] = ["/api/v1"]
        for group in self.get("/apis")["groups"]:
            groups += [f"/apis/{v['groupVersion']}" for v in group["versions"]]
        for base in groups:
            listing = self.get(base)
            for res in listing["resources"]:
                if "/" not in res["name"]:
                    self._resources[(listing["groupVersion"], res["kind"])] = (res["name"], bool(res["namespaced"]))

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the API server's discovery (refreshed once when unknown)."""
        if (api_version, kind) not in self._resources:
            self._discover()
        try:
            return self._resources[(api_version, kind)]
        except KeyError:
            raise ApiError(404, {"reason": "NotFound", "message": f"{api_version} {kind} is not served"}) from None

    def path(self, obj: Mapping[str, Any], *, named: bool = True) -> str:
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        meta = obj.get("metadata") or {}
        if namespaced:
            base += f"/namespaces/{meta.get('namespace') or 'default'}"
        return f"{base}/{plural}" + (f"/{meta['name']}" if named else "")

    # -- server-side apply --
    def apply(
        self, obj: Mapping[str, Any], *, dry_run: bool = False, manager: str = "otelstack-tests", strict: bool = True
    ) -> dict[str, Any]:
        params = {"fieldManager": manager, "force": "true"}
        if strict:
            params["fieldValidation"] = "Strict"
        if dry_run:
            params["dryRun"] = "All"
        body = json.dumps(obj).encode()  # JSON is YAML: the apply-patch content type takes it
        answer: dict[str, Any] = self.request(
            "PATCH", self.path(obj), body, content_type="application/apply-patch+yaml", params=params
        )
        return answer

    def apply_dry_run(
        self, objs: Iterable[Mapping[str, Any]], *, strict: bool = True, create_namespaces: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Server-side apply of each object with dryRun=All (ApiError on the first refusal). A dry-run object
        needs its namespace to exist, so the Namespaces in the list, and those named in
        ``create_namespaces`` (ones a real cluster gets elsewhere, e.g. cert-manager's), are created for real
        first (a listed Namespace as listed, labels included; another one bare, when absent); an object in any
        other absent namespace is refused with the API server's 404."""
        objs = list(objs)
        wanted = {str(o["metadata"]["name"]) for o in objs if o["kind"] == "Namespace"} | set(create_namespaces)
        used = {str((o.get("metadata") or {}).get("namespace")) for o in objs} - {"None"}
        given = {str(o["metadata"]["name"]): o for o in objs if o["kind"] == "Namespace"}
        for ns in sorted(wanted & (used | set(create_namespaces))):
            if ns in given:  # as given, labels included: Pod Security judges the dry-run workloads by them
                self.apply(given[ns])
                continue
            try:
                self.get(f"/api/v1/namespaces/{ns}")
            except ApiError:
                self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        return [self.apply(o, dry_run=True, strict=strict) for o in objs]

    def delete(self, obj: Mapping[str, Any]) -> None:
        with contextlib.suppress(ApiError):
            self.request("DELETE", self.path(obj))

    # -- namespaces --
    def list_namespace(self, ns: str) -> list[str]:
        """Every object in namespace ``ns`` of every listable namespaced kind, as "Kind/name" (Events and
        the API server's own EndpointSlices/Endpoints bookkeeping included: nothing is filtered)."""
        self._discover()
        found: list[str] = []
        for (api_version, kind), (plural, namespaced) in sorted(self._resources.items()):
            if not namespaced:
                continue
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = self.get(f"{base}/namespaces/{ns}/{plural}")
            except ApiError as failed:
                if failed.code in (404, 405):
                    continue
                raise
            found += [f"{kind}/{item['metadata']['name']}" for item in listing.get("items", [])]
        return sorted(set(found))

    def left_after_destroy(self, ns: str) -> list[str]:
        """``list_namespace(ns)`` without Events: those are records the API server writes on its own
        (e.g. its Service IP repair loop, on its own schedule), not objects a stack created or must delete."""
        return [item for item in self.list_namespace(ns) if not item.startswith("Event/")]

    def finalize_namespace(self, ns: str) -> None:
        """What the namespace controller does for a deleted, empty namespace: drop its finalizers."""
        current = self.get(f"/api/v1/namespaces/{ns}")
        current["spec"]["finalizers"] = []
        self.request("PUT", f"/api/v1/namespaces/{ns}/finalize", current)

    # -- CRDs --
    def apply_crds(self, files: Iterable[Path], timeout: float = 60) -> list[str]:
        """Server-side apply every CRD document in ``files``; wait until each is Established."""
        names = []
        for path in files:
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    self.apply(doc, manager="otelstack-crds")
                    names.append(str(doc["metadata"]["name"]))
        deadline = time.monotonic() + timeout
        for name in names:
            while not self.crd_established(name):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"CRD {name} is not Established after {timeout:.0f}s")
                time.sleep(0.2)
        self._resources.clear()
        return names

    def crd_established(self, name: str) -> bool:
        crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    # -- Pulumi --
    def pulumi_env(self, workdir: Path) -> dict[str, str]:
        """The environment for `pulumi` against this cluster: a local file backend and PULUMI_HOME under
        ``workdir``, a passphrase, no update check, no plugin download, our built programs first on PATH,
        KUBECONFIG pointing at this cluster."""
        backend = workdir / "backend"
        home = workdir / "pulumi-home"
        backend.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))}
        env.update(
            {
                "PATH": os.pathsep.join([str(BIN), str(VENV_BIN), env.get("PATH", "/usr/bin:/bin")]),
                "PULUMI_HOME": str(home),
                "PULUMI_BACKEND_URL": f"file://{backend}",
                "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "PULUMI_SKIP_CONFIRMATIONS": "true",
                "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
                "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
                "KUBECONFIG": str(self.kubeconfig),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env


def pulumi_plugins() -> dict[str, Any]:
    """The `plugins:` block of a Pulumi.yaml that makes the engine use the programs built here."""
    provider = (BIN / "pulumi-resource-kubernetes").resolve()
    language = (BIN / "pulumi-language-python").resolve()
    return {
        "providers": [{"name": "kubernetes", "path": str(provider.parent)}],
        "languages": [{"name": "python", "path": str(language.parent)}],
    }


def _kubeconfig(url: str, pki: Pki) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loopback", "cluster": {"server": url, "certificate-authority-data": b64(pki.ca)}}],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)},
            }
        ],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "admin"}}],
        "current-context": "loopback",
    }


@contextlib.contextmanager
def start_cluster(crds: Iterable[Path] = (), keep: bool = False) -> Iterator[Cluster]:
    """etcd + kube-apiserver on loopback for the duration of the ``with`` block; everything it started is
    stopped and its temporary directory removed afterwards (``keep``: leave the directory, for debugging)."""
    workdir = Path(tempfile.mkdtemp(prefix="otelstack-cluster-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pki = make_pki(workdir / "pki")
        client_port, peer_port, api_port = free_port(), free_port(), free_port()
        logs = {"etcd": workdir / "etcd.log", "kube-apiserver": workdir / "kube-apiserver.log"}
        deadline = time.monotonic() + START_TIMEOUT
        with open(logs["etcd"], "wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "etcd"),
                        "--name=otelstack-test",
                        f"--data-dir={workdir / 'etcd'}",
                        f"--listen-client-urls=http://127.0.0.1:{client_port}",
                        f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                        f"--initial-cluster=otelstack-test=http://127.0.0.1:{peer_port}",
                        "--unsafe-no-fsync=true",
                        "--log-level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        _wait_port(client_port, procs[0], logs["etcd"], deadline)
        url = f"https://127.0.0.1:{api_port}"
        with open(logs["kube-apiserver"], "wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "kube-apiserver"),
                        f"--etcd-servers=http://127.0.0.1:{client_port}",
                        f"--cert-dir={workdir / 'apiserver-certs'}",
                        f"--tls-cert-file={pki.serving_cert}",
                        f"--tls-private-key-file={pki.serving_key}",
                        f"--client-ca-file={pki.ca}",
                        f"--secure-port={api_port}",
                        "--bind-address=127.0.0.1",
                        "--advertise-address=127.0.0.1",
                        "--endpoint-reconciler-type=none",  # 1.37 refuses a loopback address in the Endpoints
                        "--service-cluster-ip-range=10.0.0.0/24",
                        "--allow-privileged=true",
                        "--authorization-mode=RBAC",
                        f"--service-account-issuer={url}/",
                        f"--service-account-key-file={pki.sa_pub}",
                        f"--service-account-signing-key-file={pki.sa_key}",
                        "--disable-admission-plugins=ServiceAccount",
                        "--v=1",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(_kubeconfig(url, pki)), encoding="utf-8")
        kubeconfig.chmod(0o600)
        cluster = Cluster(url, workdir, pki, kubeconfig, logs, context)
        _wait_ready(cluster, procs[1], deadline)
        cluster.apply_crds(crds)
        yield cluster
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(cluster: Cluster, proc: subprocess.Popen[bytes], deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"kube-apiserver exited with {proc.returncode}:\n{_tail(cluster.logs['kube-apiserver'])}"
            )
        try:
            if cluster.request("GET", "/readyz", timeout=5) == "ok":
                return
        except (ApiError, OSError) as failed:
            last = str(failed)
        time.sleep(0.5)
    raise RuntimeError(
        f"kube-apiserver not ready after {START_TIMEOUT:.0f}s ({last}):\n{_tail(cluster.logs['kube-apiserver'])}"
    )
