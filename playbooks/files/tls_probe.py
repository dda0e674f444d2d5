#!/usr/bin/env python3
"""TLS probe run on a platform host by playbooks/verify.yml: one handshake, its outcome as JSON.

    tls_probe.py HOST PORT CA [CERT KEY]

Exit 0 when the server's certificate verifies against CA for HOST and the server accepted the
handshake (with the client certificate when given); exit 3 when the server refused the client
(no or wrong client certificate); exit 4 when the server's certificate did not verify; 5 on no answer.

With TLS 1.3 the server judges the client's certificate after the client has finished its side of the
handshake, so the verdict comes afterwards: the probe sends nothing and listens for a moment. An alert,
or the server closing or resetting the connection without a word, is a refusal; the server speaking
first (a gRPC server's HTTP/2 settings) or keeping the connection open is an acceptance.
"""

import json
import socket
import ssl
import sys

VERDICT_WAIT = 1.5  # seconds; a refusing server answers at once


def main() -> int:
    host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)
    # gRPC servers (grpc-go 1.67 and later) close a TLS connection that negotiated no ALPN protocol, right
    # after the handshake: offer HTTP/2 as every gRPC client does (and HTTP/1.1 for the OTLP/HTTP port).
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if len(sys.argv) > 5:
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    result = {"host": host, "port": port, "client_certificate": len(sys.argv) > 5}
    try:
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=host, suppress_ragged_eofs=False) as conn,
        ):
            result["tls_version"] = conn.version()
            result["server_subject"] = dict(x[0] for x in conn.getpeercert()["subject"])
            conn.settimeout(VERDICT_WAIT)
            result.update(verdict(conn))
        code = 0 if result["outcome"] == "accepted" else 3
    except ssl.SSLCertVerificationError as exc:
        result["outcome"], result["reason"], code = "server-certificate-rejected", exc.verify_message, 4
    except ssl.SSLError as exc:  # an alert during the handshake (TLS 1.2 refuses the client here)
        result["outcome"], result["reason"], code = "client-refused", exc.reason, 3
    except OSError as exc:
        result["outcome"], result["reason"], code = "no-answer", str(exc), 5
    print(json.dumps(result))
    return code


def verdict(conn: ssl.SSLSocket) -> dict[str, str]:
    """What the server does once the handshake is done: answer or wait (accepted), or refuse."""
    try:
        if conn.recv(1):
            return {"outcome": "accepted"}
        closed = "closed without a word after the handshake"
    except TimeoutError:
        return {"outcome": "accepted"}
    except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError) as exc:
        closed = f"closed without a word after the handshake ({exc})"
    except ssl.SSLError as exc:
        return {"outcome": "client-refused", "reason": str(exc.reason)}
    return {"outcome": "client-refused", "reason": closed}


if __name__ == "__main__":
    sys.exit(main())
