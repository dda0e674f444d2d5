"""otelstack.security.certificates: what the pki role decides on, read from real certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from otelstack.security.certificates import CertificateError, certificate_facts

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("platform CA"))
        .issuer_name(name("platform CA"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def leaf(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], days: int
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = issuer
    key = ec.generate_private_key(ec.SECP384R1())
    sans = [x509.DNSName("gw-1"), x509.IPAddress(ipaddress.ip_address("10.0.0.7")), x509.DNSName("gateway.internal")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("gw-1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - dt.timedelta(minutes=10))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


def test_a_leaf_reads_as_the_role_compares_it() -> None:
    issuer = ca()
    pem, key = leaf(issuer, days=90)
    facts = certificate_facts(pem, 30, now=NOW)
    ca_facts = certificate_facts(issuer[0].public_bytes(serialization.Encoding.PEM).decode(), 0, now=NOW)
    assert facts["common_name"] == "gw-1"
    assert facts["subject_alt_name"] == ["DNS:gateway.internal", "DNS:gw-1", "IP:10.0.0.7"]
    assert facts["key_usage"] == ["digital_signature"]
    assert facts["extended_key_usage"] == ["server_auth"]
    # what the host's key probe prints for the same key
    spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert facts["public_key"] == spki.decode()
    assert facts["authority_key_identifier"] == ca_facts["subject_key_identifier"] is not None
    assert (facts["is_ca"], ca_facts["is_ca"]) == (False, True)
    assert facts["valid_through_renewal"] is True


def test_renewal_is_due_inside_the_window_and_after_expiry() -> None:
    pem, _ = leaf(ca(), days=20)
    assert certificate_facts(pem, 30, now=NOW)["valid_through_renewal"] is False
    assert certificate_facts(pem, 10, now=NOW)["valid_through_renewal"] is True
    assert certificate_facts(pem, 0, now=NOW + dt.timedelta(days=21))["valid_through_renewal"] is False
    assert certificate_facts(pem, 0, now=NOW - dt.timedelta(hours=1))["valid_through_renewal"] is False  # not yet valid


def test_another_ca_does_not_match_the_issuer() -> None:
    pem, _ = leaf(ca(), days=90)
    other = certificate_facts(ca()[0].public_bytes(serialization.Encoding.PEM).decode(), 0, now=NOW)
    assert certificate_facts(pem, 0, now=NOW)["authority_key_identifier"] != other["subject_key_identifier"]


@pytest.mark.parametrize(
    "text", ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_text_that_is_not_a_certificate_is_refused(text: str) -> None:
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        certificate_facts(text, 30)
