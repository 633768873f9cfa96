"""Sealing a bidder's signer material to its tender's certificate, and unsealing it at the
opening (ADR 0016).

Owns the sealed-identity blob: one padded bundle per bid (outer signature, validation
record, revocation evidence) or per withdrawal (the signed statement), encrypted to the
tender certificate as CMS AuthEnvelopedData (AES-256-GCM; RSAES-OAEP with the tender's
first advertised OAEP hash) and stored in the blob store. Sealing is a software
public-key operation: no token, no clock. Unsealing is a tender-key use: only through a
``TenderKeyAccess`` (which cannot exist before the opening time), and each one is
journalled (key-use row + ``key.used`` audit entry, committed) before the token is asked.

It must never write signer material in clear (blob, row, log line, error message) before
the opening, and never unseal without journalling first. Bundles are kilobytes and are
held in memory; envelopes never pass through here.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import Any, Literal

from sealed_bid.crypto.envelope import decrypt_envelope, inspect_envelope, seal_envelope
from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import DecryptionFailed, RecipientMismatch
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.tender_keys import TenderKeyAccess, journal_key_use
from sealed_bid.storage.blobstore import BlobDigest, BlobStore, IncomingBlob
from sealed_bid.storage.models import KeyOperation, Tender

BUNDLE_FORMAT = "sealed-bid/sealed-identity/v1"
MIN_PADDED_SIZE = 16 * 1024
"""Bundles are padded with spaces to a power of two, at least this: the sealed blob's
size then tells a reader of the blob store little about the chain, names or evidence."""

BundleKind = Literal["bid", "withdrawal"]


@dataclass(frozen=True)
class SealRecipient:
    """What sealing to a tender needs, read from its row inside a unit of work."""

    tender_id: TenderId
    certificate_der: bytes
    oaep_hash: str

    @classmethod
    def of(cls, tender: Tender) -> SealRecipient:
        return cls(TenderId(tender.id), bytes(tender.tender_cert_der), tender.oaep_hashes[0])


@dataclass(frozen=True)
class IdentityBundle:
    """The signer material of one bid or withdrawal, as sealed."""

    kind: BundleKind
    signature: bytes
    """Bid: the detached outer signature. Withdrawal: the signed statement (attached)."""
    validation_json: str | None = None
    """Bid: the validation record (``signers.validation_record``); its evidence items
    name their blobs by the SHA-256 of ``evidence``, the digests they get when stored."""
    evidence: tuple[bytes, ...] = ()
    """Bid: the DER of every CRL / OCSP response the validation used."""

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "kind": self.kind,
            "signature": _b64(self.signature),
            "validation": self.validation_json,
            "evidence": [_b64(der) for der in self.evidence],
        }
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")
        target = max(MIN_PADDED_SIZE, 1 << (len(data) - 1).bit_length())
        return data + b" " * (target - len(data))  # JSON allows trailing white space

    @classmethod
    def from_bytes(cls, data: bytes, kind: BundleKind) -> IdentityBundle:
        try:
            document = json.loads(data)
            if document["format"] != BUNDLE_FORMAT or document["kind"] != kind:
                raise ValueError("not a sealed identity of this kind")
            validation = document["validation"]
            if validation is not None and not isinstance(validation, str):
                raise ValueError("the validation record is not text")
            return cls(
                kind=kind,
                signature=_unb64(document["signature"]),
                validation_json=validation,
                evidence=tuple(_unb64(item) for item in document["evidence"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise DecryptionFailed(f"the unsealed data is not a sealed {kind} identity") from None


def seal(blobs: BlobStore, recipient: SealRecipient, bundle: IdentityBundle) -> BlobDigest:
    """Encrypt ``bundle`` to the tender certificate (public key only) and store the
    ciphertext; returns its digest. Nothing in clear reaches the disk."""
    with blobs.begin() as blob:
        seal_envelope(
            io.BytesIO(bundle.to_bytes()),
            _BlobSink(blob),
            [recipient.certificate_der],
            recipient.oaep_hash,
            "aes256_gcm",
        )
        return blob.commit()


def unseal(
    ctx: ServiceContext,
    access: TenderKeyAccess,
    recipient: SealRecipient,
    bid_id: str,
    sealed_blob: str,
    kind: BundleKind,
) -> IdentityBundle:
    """Decrypt a sealed identity with the tender key (``access`` exists only from the
    opening time on). The key use is committed to ``key_uses`` and the audit log first.
    Raises ``RecipientMismatch``, ``KeyTransportFailed``, ``DecryptionFailed`` (also when
    the plaintext is not a bundle of ``kind``), or the token's error."""
    path = ctx.blobs.path(sealed_blob)
    info = inspect_envelope(path)
    ours = [r for r in info.recipients if r.matches(recipient.certificate_der)]
    if not ours:
        raise RecipientMismatch("the sealed identity is not sealed to this tender's key")
    journal_key_use(ctx, access, bid_id, KeyOperation.UNSEAL)
    plain = io.BytesIO()
    # On DecryptionFailed the partial plaintext is dropped with the buffer.
    decrypt_envelope(path, info, ours[0], access, plain)
    return IdentityBundle.from_bytes(plain.getvalue(), kind)


def store_in_clear(blobs: BlobStore, access: TenderKeyAccess, bundle: IdentityBundle) -> str:
    """After the opening: write an unsealed bid's outer signature and evidence as clear
    blobs (the evidence lands under the digests its validation record names) and return
    the signature's digest. ``access`` is the proof that the opening time has come."""
    del access  # its existence is the check
    for der in bundle.evidence:
        blobs.put_bytes(der)
    return blobs.put_bytes(bundle.signature)


class _BlobSink:
    """``seal_envelope`` writes DER to a sink; this one is an incoming blob."""

    def __init__(self, blob: IncomingBlob) -> None:
        self._blob = blob

    def write(self, data: bytes, /) -> int:
        self._blob.write(data)
        return len(data)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(value, validate=True)
