"""Signing receipts on the token, and checking them offline with only the platform root.

A receipt is CMS SignedData (attached) over ``ReceiptContent.to_bytes()``, signed by the
platform receipt key; ``openssl cms -verify -CAfile platform-root.pem`` checks it too.
When a time-stamping authority is configured, the receipt's SignerInfo carries the TSA's
token over its signature as an unsigned attribute (CAdES signature time stamp,
id-aa-signatureTimeStampToken): proof, independent of the platform's clock, that the
receipt — and so the bid — existed at that time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealed_bid.crypto.signed_data import sign_attached, verify_attached
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.receipt import ReceiptContent
from sealed_bid.errors import ReceiptInvalid, SealedBidError
from sealed_bid.timestamping.cades import signature_digest, signature_timestamp_of
from sealed_bid.timestamping.rfc3161 import verify_token


def sign_receipt(content: ReceiptContent, signer: Signer) -> bytes:
    """Sign on the token. The TSA's stamp is added afterwards, outside the transaction
    (``service.receipt_stamps``)."""
    return sign_attached(signer, content.to_bytes(), content.received_at)


@dataclass(frozen=True)
class VerifiedReceipt:
    content: ReceiptContent
    signer_subject: str
    signed_at: datetime | None
    timestamped_at: datetime | None = None
    """genTime of the receipt's TSA token, when it carries one and TSA roots were given."""


def _require_receipt_role(cert: x509.Certificate) -> None:
    """The platform root also certifies TLS and operator keys; only a non-CA certificate
    with nonRepudiation and no TLS purpose may sign receipts."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        raise ReceiptInvalid("the receipt certificate lacks key usage constraints") from None
    try:
        purposes = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        purposes = set()
    tls = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    if ca or not usage.content_commitment or purposes & tls:
        raise ReceiptInvalid("the signing certificate is not a receipt-signing certificate")


def verify_receipt(
    receipt_der: bytes, platform_root_der: bytes, tsa_roots_der: Sequence[bytes] = ()
) -> VerifiedReceipt:
    """Check the signature, that the signer certificate was issued by the platform root
    and was valid when the receipt was signed, and parse the content. With
    ``tsa_roots_der``, the receipt must carry a TSA token over its signature that verifies
    under one of them."""
    try:
        facts, content_bytes = verify_attached(receipt_der)
    except SealedBidError as exc:
        raise ReceiptInvalid(f"receipt signature does not verify ({exc.code})") from None
    root = x509.load_der_x509_certificate(platform_root_der)
    signer_cert = x509.load_der_x509_certificate(facts.signer_certificate_der)
    try:
        signer_cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise ReceiptInvalid("the receipt was not signed by a key of this platform") from None
    _require_receipt_role(signer_cert)
    content = ReceiptContent.from_bytes(content_bytes)
    at = facts.signing_time or content.received_at
    if not signer_cert.not_valid_before_utc <= at <= signer_cert.not_valid_after_utc:
        raise ReceiptInvalid("the receipt key's certificate was not valid at signing time")
    timestamped_at = None
    if tsa_roots_der:
        token_der = signature_timestamp_of(receipt_der)
        if token_der is None:
            raise ReceiptInvalid("the receipt carries no time stamp")
        try:
            token = verify_token(token_der, signature_digest(receipt_der), tsa_roots_der)
        except SealedBidError as exc:
            raise ReceiptInvalid(
                f"the receipt's time stamp does not verify: {exc.message}"
            ) from None
        timestamped_at = token.gen_time
    return VerifiedReceipt(
        content=content,
        signer_subject=signer_cert.subject.rfc4514_string(),
        signed_at=at,
        timestamped_at=timestamped_at,
    )
