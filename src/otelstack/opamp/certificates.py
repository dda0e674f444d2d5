"""Client certificates through OpAMP connection settings (the specification's CSR flow).

An agent that holds a key sends a certificate signing request (`connection_settings_request.opamp.
certificate_request.csr`, PEM); the server signs it with the client CA of its settings and offers the
certificate (with the CA) as OpAMP connection settings. The private key never leaves the agent. The
certificate names the agent by its instance UID and carries only the clientAuth usage.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from otelstack.errors import OtelstackError


class CertificateError(OtelstackError):
    """A CSR that cannot be signed, or a signing CA that cannot be loaded."""


class ClientCa:
    def __init__(self, cert_file: Path, key_file: Path, valid_days: int = 30) -> None:
        try:
            self.cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise CertificateError(f"client CA {cert_file}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CertificateError(f"client CA key {key_file}: only EC and RSA keys are supported")
        self.key = key
        self.valid_days = valid_days
        self.ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, csr_pem: bytes, instance_uid: str) -> bytes:
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CertificateError(f"not a PEM certificate signing request: {exc}") from exc
        if not csr.is_signature_valid:
            raise CertificateError("the CSR's signature does not match its public key")
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, instance_uid)]))
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=10))
            .not_valid_after(now + dt.timedelta(days=self.valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:opamp:instance:{instance_uid}")]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM)


class CaBundle:
    """The CA certificate(s) agents verify this server with (settings ``opamp_ca_file``), offered with the
    OpAMP connection settings. Read again when the file changes (a new CA, or old and new during a CA
    rotation), so a replaced file reaches the agents without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._pem = b""
        self.pem()  # a file that cannot be used stops the server at start

    def pem(self) -> bytes:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise CertificateError(f"opamp_ca_file {self.path}: {exc.strerror}") from exc
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                data = self.path.read_bytes()
                certificates = x509.load_pem_x509_certificates(data)
            except OSError as exc:
                raise CertificateError(f"opamp_ca_file {self.path}: {exc.strerror}") from exc
            except ValueError as exc:
                raise CertificateError(f"opamp_ca_file {self.path}: not PEM certificates: {exc}") from exc
            self._pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
            self._stamp = stamp
        return self._pem
