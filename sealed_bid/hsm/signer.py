"""Token-backed implementations of the crypto layer's Signer and KeyTransport.

Owns only the adaptation: keys stay on the token, and a ``TenderKeyTransport`` reaches a
tender private key solely through ``Token.decrypt_tender_key``. Neither class decides
*when* a key may be used; the service's opening guard does.
"""

from __future__ import annotations

from sealed_bid.crypto.signer import SignatureAlgorithm
from sealed_bid.hsm.token import Token


class TokenSigner:
    """A ``Signer`` whose key is the token's platform key ``label`` (CKM_SHA256_RSA_PKCS)."""

    def __init__(self, token: Token, label: str, certificate_der: bytes) -> None:
        self._token = token
        self._label = label
        self._certificate_der = bytes(certificate_der)

    @property
    def certificate_der(self) -> bytes:
        return self._certificate_der

    @property
    def signature_algorithm(self) -> SignatureAlgorithm:
        return "sha256_rsa"

    @property
    def label(self) -> str:
        return self._label

    def sign(self, data: bytes) -> bytes:
        return self._token.sign(self._label, data)


class TenderKeyTransport:
    """A ``KeyTransport`` that recovers content keys with one tender's token key."""

    def __init__(self, token: Token, tender_id: str) -> None:
        self._token = token
        self._tender_id = tender_id

    @property
    def tender_id(self) -> str:
        return self._tender_id

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        return self._token.decrypt_tender_key(self._tender_id, encrypted_key, oaep_hash)
