"""What the pki role checks of a certificate in place, read on the controller in the task's own process.

The role keeps a certificate when the CA would keep it: not due for renewal, signed by this CA (its key
identifier), for this key, with these names and usages. Reading those from the PEM here (a Jinja filter,
otelstack.platform.certificate_facts) costs no module run: a module is a separate Python process on the
controller for each certificate of each host, which was most of an idempotent run's PKI time.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

# The extended key usages the platform issues, by the names the role compares (others: dotted OIDs).
USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "server_auth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "client_auth",
}
KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


class CertificateError(ValueError):
    """The text is not one PEM certificate."""


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _names(cert: x509.Certificate) -> list[str]:
    sans = _extension(cert, x509.SubjectAlternativeName)
    if sans is None:
        return []
    names = [f"DNS:{name}" for name in sans.get_values_for_type(x509.DNSName)]
    names += [f"IP:{ipaddress.ip_address(ip)}" for ip in sans.get_values_for_type(x509.IPAddress)]
    return sorted(names)


def _key_usage(cert: x509.Certificate) -> list[str]:
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        return []
    found = [name for name in KEY_USAGES if getattr(usage, name)]
    if usage.key_agreement:
        found += [name for name in ("encipher_only", "decipher_only") if getattr(usage, name)]
    return found


def _hex(value: bytes | None) -> str | None:
    return value.hex(":") if value is not None else None


def certificate_facts(pem: str, renew_before_days: int, now: datetime.datetime | None = None) -> dict[str, Any]:
    """The facts of one PEM certificate the pki role decides on.

    ``valid_through_renewal``: valid now and still valid ``renew_before_days`` from now (false: renew);
    ``subject_alt_name``: sorted ``DNS:name`` / ``IP:address``; ``public_key``: SubjectPublicKeyInfo PEM
    (what the host's key probe prints); key identifiers as colon-separated lower-case hex.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from exc
    moment = now or datetime.datetime.now(datetime.UTC)
    renew_at = moment + datetime.timedelta(days=int(renew_before_days))
    common_names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    usages = _extension(cert, x509.ExtendedKeyUsage) or []
    authority = _extension(cert, x509.AuthorityKeyIdentifier)
    subject_key = _extension(cert, x509.SubjectKeyIdentifier)
    constraints = _extension(cert, x509.BasicConstraints)
    return {
        "common_name": str(common_names[0].value) if common_names else "",
        "subject_alt_name": _names(cert),
        "key_usage": _key_usage(cert),
        "extended_key_usage": [USAGE_NAMES.get(oid, oid.dotted_string) for oid in usages],
        "public_key": cert.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii"),
        "authority_key_identifier": _hex(authority.key_identifier) if authority is not None else None,
        "subject_key_identifier": _hex(subject_key.digest) if subject_key is not None else None,
        "is_ca": bool(constraints is not None and constraints.ca),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "valid_through_renewal": cert.not_valid_before_utc <= moment and renew_at <= cert.not_valid_after_utc,
    }
