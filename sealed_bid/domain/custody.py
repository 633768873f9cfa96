"""Who must cooperate before a tender key may be used: the tender's unlock policy.

``scheduled``: the service may use the key itself once the opening time is proven.
``quorum``: K of N named opening officers must each present a share of the key token's PIN.
Pure: parses and checks officer certificates (with ``crypto.share_envelope``'s rule for
what can receive a share), no I/O. Officers must be distinct persons:
distinct certificates and distinct subjects, so one person cannot hold two shares.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealed_bid.crypto.share_envelope import check_officer_certificate
from sealed_bid.errors import InvalidTender

UnlockKind = Literal["scheduled", "quorum"]
MAX_OFFICERS = 16
MIN_THRESHOLD = 2
DEFAULT_RESPONSE_WINDOW_SECONDS = 3600
"""How long after the record bidders may confirm or object, unless the tender says."""
MAX_RESPONSE_WINDOW_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class OfficerSpec:
    index: int
    """The officer's share index, 1..N, in the order the certificates were given."""
    subject: str
    """RFC 4514 subject of the officer's certificate."""
    certificate_der: bytes

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.certificate_der).hexdigest()


@dataclass(frozen=True)
class UnlockPolicy:
    kind: UnlockKind
    threshold: int = 0
    officers: tuple[OfficerSpec, ...] = ()

    @property
    def total(self) -> int:
        return len(self.officers)

    def officer_by_certificate(self, certificate_der: bytes) -> OfficerSpec | None:
        digest = hashlib.sha256(certificate_der).hexdigest()
        return next((o for o in self.officers if o.certificate_sha256 == digest), None)


SCHEDULED = UnlockPolicy(kind="scheduled")


def _person(subject: x509.Name) -> str:
    """A subject compared case-insensitively, attribute order kept."""
    return subject.rfc4514_string().casefold()


def validate_unlock_policy(
    threshold: int, officer_certificates: tuple[bytes, ...], now: datetime
) -> UnlockPolicy:
    """Both empty: ``scheduled``. Otherwise a ``quorum`` of ``threshold`` out of the given
    officers, each certificate able to receive a share (``check_officer_certificate``),
    valid now, and every officer a different person. Raises ``InvalidTender``."""
    if threshold == 0 and not officer_certificates:
        return SCHEDULED
    total = len(officer_certificates)
    if not MIN_THRESHOLD <= threshold <= total <= MAX_OFFICERS:
        raise InvalidTender(
            f"a quorum needs {MIN_THRESHOLD} <= threshold <= officers <= {MAX_OFFICERS};"
            f" got threshold {threshold} of {total} officers",
            field="quorum_threshold",
        )
    officers: list[OfficerSpec] = []
    seen_certs: set[bytes] = set()
    seen_people: set[str] = set()
    for index, der in enumerate(officer_certificates, start=1):
        try:
            check_officer_certificate(der)  # an RSA key that may receive a share
        except InvalidTender as exc:
            raise InvalidTender(
                f"officer certificate {index}: {exc.message}", field="officer_certificates"
            ) from None
        cert = x509.load_der_x509_certificate(der)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise InvalidTender(
                f"officer certificate {index} is not valid now", field="officer_certificates"
            )
        person = _person(cert.subject)
        if der in seen_certs or person in seen_people:
            raise InvalidTender(
                "opening officers must be distinct persons: two officer certificates share"
                f" a subject or are the same certificate ({cert.subject.rfc4514_string()})",
                field="officer_certificates",
            )
        seen_certs.add(der)
        seen_people.add(person)
        officers.append(OfficerSpec(index, cert.subject.rfc4514_string(), der))
    return UnlockPolicy(kind="quorum", threshold=threshold, officers=tuple(officers))


def check_officers_authenticate(
    policy: UnlockPolicy, operator_roots_pem: bytes, now: datetime
) -> None:
    """Every officer certificate must be able to log in to the operator port: issued
    directly by an operator CA root and usable as a TLS client certificate. An officer who
    cannot present a share could leave a quorum tender unopenable. Raises
    ``InvalidTender``. (The listener's TLS check at presentation stays authoritative.)"""
    roots = x509.load_pem_x509_certificates(operator_roots_pem)
    for officer in policy.officers:
        cert = x509.load_der_x509_certificate(officer.certificate_der)
        if not any(_issued_by(cert, root, now) for root in roots):
            raise InvalidTender(
                f"officer certificate {officer.index} ({officer.subject}) is not issued by the"
                " operator CA, so it cannot log in to present its share",
                field="officer_certificates",
            )
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise InvalidTender(
                f"officer certificate {officer.index} ({officer.subject}) is not a TLS client"
                " certificate (extendedKeyUsage lacks clientAuth)",
                field="officer_certificates",
            )


def _issued_by(cert: x509.Certificate, root: x509.Certificate, now: datetime) -> bool:
    if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
        return False
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
