"""Software implementations of the ``Signer`` and ``KeyTransport`` protocols.

They hold a private key in process memory: for the bidder SDK, the development PKI and
tests. The service's own keys (tender keys, receipt key) live on the token and must never
be handled by this module.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sealed_bid.crypto.signer import SignatureAlgorithm
from sealed_bid.errors import AlgorithmRefused, KeyTransportFailed

OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def oaep_padding(oaep_hash: str) -> padding.OAEP:
    """RSAES-OAEP with MGF1 over the same hash and an empty label (what CMS tools emit)."""
    try:
        algorithm = OAEP_HASHES[oaep_hash]
    except KeyError:
        raise AlgorithmRefused(f"unsupported OAEP hash {oaep_hash!r}") from None
    return padding.OAEP(mgf=padding.MGF1(algorithm()), algorithm=algorithm(), label=None)


class SoftwareSigner:
    """Signs with an in-memory RSA (PKCS#1 v1.5) or EC (ECDSA) key, always over SHA-256."""

    def __init__(
        self,
        private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        certificate_der: bytes,
    ) -> None:
        certificate = x509.load_der_x509_certificate(certificate_der)
        if certificate.public_key() != private_key.public_key():
            raise ValueError("the certificate does not belong to the private key")
        self._key = private_key
        self._certificate_der = certificate_der

    @property
    def certificate_der(self) -> bytes:
        return self._certificate_der

    @property
    def signature_algorithm(self) -> SignatureAlgorithm:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return "sha256_rsa"
        return "sha256_ecdsa"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


class SoftwareKeyTransport:
    """Recovers a CMS content-encryption key with an in-memory RSA key (RSAES-OAEP)."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._key = private_key

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        pad = oaep_padding(oaep_hash)
        try:
            return self._key.decrypt(encrypted_key, pad)
        except ValueError:
            # Deliberately no detail: OAEP failures must not become a padding oracle.
            raise KeyTransportFailed("the content key could not be recovered") from None
