"""Who a signer certificate names: the bidder identity, and what "the same bidder" means.

``identity_key`` is what the service compares across certificate renewals (a withdrawal
must come from the bidder who submitted). Decision (ADR 0006):

* If the subject's serialNumber (2.5.4.5) is a well-formed Unified Social Credit Code
  (GB 32100-2015: 18 characters, valid check character), the key is ``uscc:<code>``.
  The code is assigned to the legal person by the state, survives renewals, re-keying
  and a change of CA, and every accepted CA is trusted to vouch for it.
* Otherwise the key is ``dn:`` + SHA-256 over the issuer and subject names (normalised as
  RFC 5280 7.1 compares names). It survives renewals by the same issuing CA; a new
  issuing CA makes a new identity. That fails closed (a withdrawal is refused) rather
  than letting two CAs' namesakes be taken for one bidder.

It parses only; it must never decide whether the certificate is trusted (validation.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from ca_bridge.trust_store import parse_certificate

_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_character(first_17: str) -> str:
    """The 18th character of a Unified Social Credit Code (GB 32100-2015, mod 31)."""
    if len(first_17) != 17 or any(ch not in _USCC_CHARSET for ch in first_17):
        raise ValueError("a USCC prefix is 17 characters of 0-9 and A-Y without I, O, S, V, Z")
    total = sum(_USCC_CHARSET.index(ch) * w for ch, w in zip(first_17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARSET[(31 - total % 31) % 31]


def is_valid_uscc(value: str) -> bool:
    if len(value) != 18 or any(ch not in _USCC_CHARSET for ch in value):
        return False
    return uscc_check_character(value[:17]) == value[17]


@dataclass(frozen=True)
class BidderIdentity:
    organisation: str | None
    common_name: str | None
    credit_code: str | None
    """The subject serialNumber when it is a valid USCC, else None."""
    subject_serial_number: str | None
    """The raw subject serialNumber, whatever it holds."""
    subject_der: bytes
    issuer_der: bytes
    certificate_sha256: bytes
    identity_key: bytes

    @classmethod
    def from_certificate(cls, cert_der: bytes) -> BidderIdentity:
        cert = parse_certificate(cert_der)
        subject: asn1_x509.Name = cert.subject
        issuer: asn1_x509.Name = cert.issuer
        serial_number = _single(subject, "serial_number")
        credit_code = None
        if serial_number is not None and is_valid_uscc(serial_number.strip().upper()):
            credit_code = serial_number.strip().upper()
        if credit_code is not None:
            key = b"uscc:" + credit_code.encode("ascii")
        else:
            names = hashlib.sha256()
            # .hashable is asn1crypto's RFC 5280 7.1 normalisation (case, spaces, string type).
            for name in (issuer, subject):
                encoded = name.hashable.encode("utf-8")
                names.update(len(encoded).to_bytes(4, "big") + encoded)
            key = b"dn:" + names.digest()
        return cls(
            organisation=_single(subject, "organization_name"),
            common_name=_single(subject, "common_name"),
            credit_code=credit_code,
            subject_serial_number=serial_number,
            subject_der=subject.dump(),
            issuer_der=issuer.dump(),
            certificate_sha256=hashlib.sha256(cert_der).digest(),
            identity_key=key,
        )

    def same_bidder(self, other: BidderIdentity) -> bool:
        return self.identity_key == other.identity_key


def _single(name: asn1_x509.Name, attribute: str) -> str | None:
    """The attribute's value, or None; several values are joined (rare, but legal)."""
    values: list[str] = []
    for rdn in name.chosen:
        for type_and_value in rdn:
            if type_and_value["type"].native == attribute:
                values.append(str(type_and_value["value"].native))
    if not values:
        return None
    return " + ".join(values)
