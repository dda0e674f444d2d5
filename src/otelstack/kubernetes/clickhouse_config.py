"""What an in-cluster ClickHouse server reads besides the rendered ``clickhouse/config.d/otelstack.xml``.

The image's own ``config.xml`` and ``users.xml`` stay as shipped; these fragments are merged over them (ClickHouse
merges ``config.d/*.xml`` and ``users.d/*.xml`` in name order; an element with ``remove="remove"`` deletes the
element of that name, docs "Configuration Files"):

- ``config.d/otelstack-kubernetes.xml`` (one server, :func:`server_fragment`): listen on every address of the
  pod; log to the console only (the image's log files would be written to its read-only root file system);
  the listeners the spec's endpoint uses — with TLS ``https_port`` 8443 and ``tcp_port_secure`` 9440 and the
  plaintext ``http_port``/``tcp_port`` removed, without TLS 8123 and 9000 — and none of the image's others
  (MySQL, PostgreSQL, interserver: a single server has no replica to talk to);
- the ``<openSSL>`` section (:func:`openssl_element`): the cert-manager Certificate's files, the platform CA
  as ``caConfig``, client certificates verified when presented with mTLS (``relaxed``: a client with one must
  present a valid one, a client without one — the kubelet's probe, the schema Job — still authenticates by
  password), no OpenSSL default CAs, TLS 1.2 and later;
- ``users.d/otelstack-admin.xml`` (:func:`admin_fragment`): the admin user the schema Job logs in as, its
  password read from the environment at start (``from_env``), allowed to manage access (the Job creates the
  writer and reader users); the image's passwordless ``default`` user is removed.

Setting names: ``https_port``, ``tcp_port_secure``, ``listen_host``, ``listen_try``, ``logger``, ``openSSL``
from ClickHouse's server settings reference; the ``openSSL.server`` keys from its Poco fork
(base/poco/NetSSL_OpenSSL/include/Poco/Net/SSLManager.h); ``remove``/``from_env`` from "Configuration Files";
the user's keys (``password``, ``networks/ip``, ``profile``, ``quota``, ``access_management``: every privilege
with grant option) from src/Access/UsersConfigParser.cpp.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from otelstack.security.layout import (
    CLICKHOUSE_HTTP_PORT,
    CLICKHOUSE_HTTPS_PORT,
    CLICKHOUSE_NATIVE_PORT,
    CLICKHOUSE_NATIVE_TLS_PORT,
)

SERVER_DIR = "/etc/clickhouse-server"
CONFIG_D = f"{SERVER_DIR}/config.d"
USERS_D = f"{SERVER_DIR}/users.d"
TLS_DIR = f"{SERVER_DIR}/tls"
DATA_DIR = "/var/lib/clickhouse"
SERVER_FILE = "otelstack-kubernetes.xml"
TLS_FILE = "otelstack-tls.xml"
ADMIN_FILE = "otelstack-admin.xml"
# What a TLS listener is without TLS: the ports a plaintext endpoint names.
PLAINTEXT_PORTS = {CLICKHOUSE_NATIVE_TLS_PORT: CLICKHOUSE_NATIVE_PORT, CLICKHOUSE_HTTPS_PORT: CLICKHOUSE_HTTP_PORT}
PLAINTEXT_NAMES = {CLICKHOUSE_NATIVE_TLS_PORT: "native", CLICKHOUSE_HTTPS_PORT: "http"}
REMOVE = {"remove": "remove"}
# The image's listeners a single server does not use (its config.xml opens them).
UNUSED_LISTENERS = ("mysql_port", "postgresql_port", "interserver_http_port")


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _document(root: ET.Element, comment: str) -> str:
    ET.indent(root)
    lines = "".join(f"     {line}\n" for line in comment.splitlines()[1:])
    head = f"<!-- otelstack: {comment.splitlines()[0]}\n{lines}-->\n" if lines else f"<!-- otelstack: {comment} -->\n"
    return '<?xml version="1.0"?>\n' + head + ET.tostring(root, encoding="unicode") + "\n"


def openssl_element(mtls: bool) -> ET.Element:
    """``<openSSL><server>``: the server certificate, the platform CA; client certificates checked with mTLS."""
    openssl = ET.Element("openSSL")
    server = ET.SubElement(openssl, "server")
    _text(server, "certificateFile", f"{TLS_DIR}/server.crt")
    _text(server, "privateKeyFile", f"{TLS_DIR}/server.key")
    _text(server, "caConfig", f"{TLS_DIR}/ca.crt")
    _text(server, "verificationMode", "relaxed" if mtls else "none")
    _text(server, "loadDefaultCAFile", "false")
    _text(server, "cacheSessions", "true")
    _text(server, "disableProtocols", "sslv2,sslv3,tlsv1,tlsv1_1")
    _text(server, "preferServerCiphers", "true")
    return openssl


def server_fragment(tls: bool, mtls: bool) -> str:
    """``config.d/otelstack-kubernetes.xml`` of the one-server mode (see the module's text)."""
    root = ET.Element("clickhouse")
    for address in ("::", "0.0.0.0"):
        _text(root, "listen_host", address)
    _text(root, "listen_try", "1")  # a pod without IPv6 still starts on 0.0.0.0
    logger = ET.SubElement(root, "logger")
    _text(logger, "level", "information")
    _text(logger, "console", "1")
    ET.SubElement(logger, "log", REMOVE)
    ET.SubElement(logger, "errorlog", REMOVE)
    if tls:
        _text(root, "https_port", str(CLICKHOUSE_HTTPS_PORT))
        _text(root, "tcp_port_secure", str(CLICKHOUSE_NATIVE_TLS_PORT))
        for plain in ("http_port", "tcp_port"):
            ET.SubElement(root, plain, REMOVE)
    else:
        _text(root, "http_port", str(CLICKHOUSE_HTTP_PORT))
        _text(root, "tcp_port", str(CLICKHOUSE_NATIVE_PORT))
    for unused in UNUSED_LISTENERS:
        ET.SubElement(root, unused, REMOVE)
    if tls:
        root.append(openssl_element(mtls))
    mode = "TLS only (8443, 9440)" if tls else "plaintext (8123, 9000), as the spec's endpoint"
    return _document(root, f"the in-cluster server's listeners: {mode}; logs to the console.")


def tls_fragment(mtls: bool) -> str:
    """``config.d/otelstack-tls.xml`` of the operator's servers: the ``<openSSL>`` section alone (the
    operator writes the ports)."""
    root = ET.Element("clickhouse")
    root.append(openssl_element(mtls))
    return _document(root, "TLS of the servers: the cert-manager Certificate, the platform CA.")


def admin_fragment(user: str, password_env: str) -> str:
    """``users.d/otelstack-admin.xml``: `user` with the password of variable `password_env`, managing access."""
    root = ET.Element("clickhouse")
    users = ET.SubElement(root, "users")
    ET.SubElement(users, "default", REMOVE)
    admin = ET.SubElement(users, user)
    ET.SubElement(admin, "password", {"from_env": password_env})
    networks = ET.SubElement(admin, "networks")
    for network in ("::/0", "0.0.0.0/0"):
        _text(networks, "ip", network)
    _text(admin, "profile", "default")
    _text(admin, "quota", "default")
    _text(admin, "access_management", "1")
    return _document(
        root,
        f"the schema Job's admin user; its password comes from ${password_env} (Secret otelstack-secrets).\n"
        "The image's passwordless default user is removed.",
    )
