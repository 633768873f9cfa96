"""Who may call ``TrustService``, and for which CA.

A CA authority is a TLS client whose certificate carries OU=ca-authority and chains,
through the material of the current trust snapshot, to an anchor of exactly one CA. The
authority listener's TLS handshake has already refused certificates that chain to no
active anchor (``anchors_pem`` is its list of client roots); this module decides which CA
the caller speaks for, so that it can publish for that CA only.

It must never let an authority change another CA's material, and it never looks at
anything but the trust snapshot: no certificates fetched from AIA, none taken from the
client beyond its own certificate, so an authority's certificate must be issued by an
anchor or intermediate the trust store already holds for its CA.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import cast

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca_bridge.trust_store import CaMaterial, TrustStore
from sealed_bid.errors import SealedBidError, Status

AUTHORITY_ROLE = "ca-authority"
"""The OU an authority's client certificate carries (the dev PKI's ``bidder_authority``)."""

_MAX_PATH = 8
"""Certificates above the client's own, at most: no real CA hierarchy is deeper."""
_MAX_ACTOR = 128
"""DbTrustStore's limit for the name recorded with a change."""


class AuthorityRequired(SealedBidError):
    """A TrustService RPC without a client certificate carrying OU=ca-authority."""

    code = "AUTHORITY_REQUIRED"
    status = Status.PERMISSION_DENIED


class AuthorityCaUndetermined(SealedBidError):
    """The client certificate chains to the anchors of no CA in the current trust store
    (e.g. the CA was removed since the connection was opened), or of several."""

    code = "AUTHORITY_CA_UNDETERMINED"
    status = Status.PERMISSION_DENIED


class AuthorityWrongCa(SealedBidError):
    """An authority tried to publish material for a CA other than its own."""

    code = "AUTHORITY_WRONG_CA"
    status = Status.PERMISSION_DENIED


@dataclass(frozen=True)
class Authority:
    """A caller established as the authority of one CA."""

    ca_id: str
    subject: str
    """The client certificate's subject, RFC 4514."""
    certificate_sha256: str

    @property
    def actor(self) -> str:
        """The name recorded with a trust change: the subject, shortened to the store's
        limit with the certificate's fingerprint kept, so it still names one certificate."""
        if len(self.subject) <= _MAX_ACTOR:
            return self.subject
        suffix = f"... sha256:{self.certificate_sha256[:16]}"
        return self.subject[: _MAX_ACTOR - len(suffix)] + suffix

    def require(self, ca_id: str) -> None:
        if ca_id != self.ca_id:
            raise AuthorityWrongCa(
                f"this certificate is the authority of CA {self.ca_id!r}; it may publish "
                f"for that CA only, not for {ca_id!r}",
                authority_ca_id=self.ca_id,
                requested_ca_id=ca_id,
            )


def authority_from_context(context: grpc.ServicerContext, trust: TrustStore) -> Authority:
    """The caller of this RPC as a CA authority, or raise AuthorityRequired /
    AuthorityCaUndetermined."""
    # grpc-stubs types the values as bytes; grpcio really returns a list of bytes.
    auth = cast("Mapping[str, Sequence[bytes]]", context.auth_context())
    pems = list(auth.get("x509_pem_cert", ()))
    if not pems:
        raise AuthorityRequired("TrustService needs a CA authority's client certificate")
    return authority_of(x509.load_pem_x509_certificate(pems[0]), trust)


def authority_of(cert: x509.Certificate, trust: TrustStore) -> Authority:
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if AUTHORITY_ROLE not in units:
        raise AuthorityRequired(
            f"the client certificate does not carry the CA authority role (OU={AUTHORITY_ROLE})"
        )
    subject = cert.subject.rfc4514_string()
    ca_ids = [ca_id for ca_id in trust.ca_ids() if _chains_to(cert, trust.material(ca_id))]
    if len(ca_ids) != 1:
        held = "none" if not ca_ids else ", ".join(ca_ids)
        raise AuthorityCaUndetermined(
            f"the client certificate must chain to the anchors of exactly one CA in the "
            f"trust store through its anchors and intermediates; it chains to: {held}",
            subject=subject,
            ca_ids=ca_ids,
        )
    sha256 = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return Authority(ca_id=ca_ids[0], subject=subject, certificate_sha256=sha256)


def anchors_pem(trust: TrustStore) -> bytes:
    """The authority listener's client roots: every active anchor of every CA, in CA-id
    order. With none, a root whose key no longer exists, so no client is accepted."""
    seen: dict[bytes, None] = {}
    for ca_id in trust.ca_ids():
        for der in trust.material(ca_id).anchors:
            seen.setdefault(der, None)
    ders = list(seen) or [_unreachable_root()]
    return b"".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in ders
    )


def _chains_to(cert: x509.Certificate, material: CaMaterial) -> bool:
    anchors = [x509.load_der_x509_certificate(d) for d in material.anchors]
    # Anchors first: a cross-certificate with an anchor's name and key ends the path there.
    candidates = anchors + [x509.load_der_x509_certificate(d) for d in material.intermediates]
    current = cert
    for _ in range(_MAX_PATH):
        issuer = next((c for c in candidates if _issued_by(current, c)), None)
        if issuer is None:
            return False
        if issuer in anchors:
            return True
        current = issuer
    return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        if not issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
        cert.verify_directly_issued_by(issuer)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


@cache
def _unreachable_root() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())  # dropped: nothing can chain to this root
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sealed Bid: no CA is trusted")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)
