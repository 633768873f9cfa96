"""The one signing interface: a software key (bidder SDK, dev PKI) and a token key
(receipts, tender certificates, audit log) both implement it."""

from __future__ import annotations

from typing import Literal, Protocol

SignatureAlgorithm = Literal["sha256_rsa", "sha256_ecdsa"]


class Signer(Protocol):
    @property
    def certificate_der(self) -> bytes:
        """The signer's X.509 certificate, DER."""
        ...

    @property
    def signature_algorithm(self) -> SignatureAlgorithm:
        """'sha256_rsa' (PKCS#1 v1.5) or 'sha256_ecdsa' (DER-encoded ECDSA-Sig-Value)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (hashing it with SHA-256 inside) and return the signature bytes."""
        ...


class KeyTransport(Protocol):
    """Decrypts a CMS KeyTransRecipientInfo's encryptedKey (RSAES-OAEP)."""

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        """Return the content-encryption key. ``oaep_hash`` is 'sha1', 'sha256', ...
        (MGF1 uses the same hash). Raises ``crypto.errors.KeyTransportFailed``."""
        ...
