# Copyright otelstack developers. Apache-2.0.
"""Filter plugin: the facts of a PEM certificate the pki role decides on, read in the task's process."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: certificate_facts
short_description: What the pki role checks of a PEM certificate (names, usages, key, issuer, renewal)
description:
  - Reads one PEM certificate with the controller's python cryptography, without a module run.
  - Returns C(common_name), C(subject_alt_name) (sorted C(DNS:name)/C(IP:address)), C(key_usage)
    (e.g. C(digital_signature)), C(extended_key_usage) (C(server_auth), C(client_auth) or dotted OIDs),
    C(public_key) (SubjectPublicKeyInfo PEM), C(authority_key_identifier) and C(subject_key_identifier)
    (colon-separated hex), C(is_ca), C(not_after), and C(valid_through_renewal) (valid now and for the
    given number of days).
  - Text that is not a PEM certificate fails, naming the cause.
options:
  _input:
    description: The PEM text of one certificate.
    type: str
    required: true
  renew_before_days:
    description: Days from now the certificate must still be valid for C(valid_through_renewal).
    type: int
    default: 0
"""

EXAMPLES = r"""
__pki_ca_facts: "{{ lookup('ansible.builtin.file', '/home/me/pki/ca.crt') | otelstack.platform.certificate_facts }}"
"""

RETURN = r"""
_value:
  description: The certificate's facts (see the description).
  type: dict
"""


def certificate_facts(text, renew_before_days=0):  # type: ignore[no-untyped-def]
    try:
        from otelstack.security.certificates import CertificateError
        from otelstack.security.certificates import certificate_facts as facts
    except ImportError as exc:  # pragma: no cover - environment problem
        raise AnsibleFilterError(
            f"the otelstack Python package is not importable by the controller's Python: {exc}"
        ) from exc
    if not isinstance(text, str):
        raise AnsibleFilterError(f"certificate_facts: expects the PEM text of a certificate, not {type(text).__name__}")
    try:
        return facts(str(text), int(renew_before_days))
    except CertificateError as exc:
        raise AnsibleFilterError(f"certificate_facts: {exc}") from exc


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return {"certificate_facts": certificate_facts}
