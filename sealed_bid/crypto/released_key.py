"""A bid's content-encryption key outside the tender key: recovered by the bidder from the
RecipientInfo sealed to its own certificate (``recover_own_content_key``, on the
bidder's machine), and used at the opening as a ``KeyTransport`` that already knows the
key (``ReleasedKeyTransport``).

Pure crypto over the files it is given. It never writes plaintext anywhere (the local
check decrypts into the null device), never logs, and never shows the key in a
``repr`` or an error message. It does not decide who may release a key or when (the
service does).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from sealed_bid.crypto.envelope import EnvelopeInfo, Recipient, decrypt_envelope, inspect_envelope
from sealed_bid.crypto.software_signer import SoftwareKeyTransport
from sealed_bid.errors import AlgorithmRefused, RecipientMismatch


class ReleasedKeyTransport:
    """A ``KeyTransport`` that returns the content key it was given and ignores the
    encrypted key: ``decrypt_envelope`` still takes the content algorithm, nonce or IV and
    tag from the envelope, so the GCM tag (or the CBC padding and then the inner
    signature) decides whether the key opens it."""

    def __init__(self, content_key: bytes) -> None:
        self._key = bytes(content_key)

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        del encrypted_key, oaep_hash
        return self._key

    def __repr__(self) -> str:
        return "ReleasedKeyTransport(<content key withheld>)"


def own_recipient(info: EnvelopeInfo, own_certificate_der: bytes) -> Recipient:
    """The envelope's RecipientInfo for ``own_certificate_der``; ``RecipientMismatch`` if
    there is none, ``AlgorithmRefused`` unless it is RSAES-OAEP key transport (key
    agreement, e.g. to an EC certificate, is not implemented here: use
    ``openssl cms -decrypt`` for it)."""
    matching = [r for r in info.recipients if r.matches(own_certificate_der)]
    if not matching:
        raise RecipientMismatch(
            "the envelope has no RecipientInfo for this certificate; it was not sealed to it"
            " (seal with --also-to)"
        )
    recipient = matching[0]
    if recipient.key_encryption != "rsaes_oaep" or recipient.oaep_hash is None:
        raise AlgorithmRefused(
            f"the RecipientInfo for this certificate uses {recipient.key_encryption}; only"
            " RSAES-OAEP key transport is implemented here (key agreement is not)"
        )
    return recipient


def recover_own_content_key(
    envelope_path: Path, own_certificate_der: bytes, own_key: rsa.RSAPrivateKey
) -> bytes:
    """The envelope's content key, from the RecipientInfo sealed to the bidder's own
    certificate, checked by decrypting the whole envelope into nothing (the GCM tag or
    the CBC padding must verify). Raises ``RecipientMismatch``, ``AlgorithmRefused``,
    ``KeyTransportFailed`` (not this key), ``DecryptionFailed`` and the envelope errors of
    ``inspect_envelope``."""
    info = inspect_envelope(envelope_path)
    recipient = own_recipient(info, own_certificate_der)
    oaep_hash = recipient.oaep_hash or ""  # own_recipient refused None
    key = SoftwareKeyTransport(own_key).decrypt_key(recipient.encrypted_key, oaep_hash)
    # The plaintext goes nowhere: only the tag (or the padding) matters here.
    with open(os.devnull, "wb") as sink:
        decrypt_envelope(envelope_path, info, recipient, ReleasedKeyTransport(key), sink)
    return key
