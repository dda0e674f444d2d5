#!/usr/bin/env python3
"""TLS probe run on a platform host by playbooks/verify.yml: one handshake, its outcome as JSON.

    tls_probe.py HOST PORT CA [CERT KEY]

Exit 0 when the server's certificate verifies against CA for HOST and the server accepted the
handshake (with the client certificate when given); exit 3 when the server refused the client
(no or wrong client certificate); exit 4 when the server's certificate did not verify; 5 on no answer.
"""

import json
import socket
import ssl
import sys


def main() -> int:
    host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)
    if len(sys.argv) > 5:
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    result = {"host": host, "port": port, "client_certificate": len(sys.argv) > 5}
    try:
        with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as conn:
            result["tls_version"] = conn.version()
            result["server_subject"] = dict(x[0] for x in conn.getpeercert()["subject"])
            conn.sendall(b"\0")
            conn.recv(1)  # TLS 1.3: a refused client certificate surfaces here, after the handshake
            result["outcome"] = "accepted"
            code = 0
    except ssl.SSLCertVerificationError as exc:
        result["outcome"], result["reason"], code = "server-certificate-rejected", exc.verify_message, 4
    except ssl.SSLError as exc:
        result["outcome"], result["reason"], code = "client-refused", exc.reason, 3
    except OSError as exc:
        result["outcome"], result["reason"], code = "no-answer", str(exc), 5
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
