"""The token behind the crypto layer's Signer and KeyTransport interfaces."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sealed_bid.crypto.signer import KeyTransport, Signer
from sealed_bid.errors import KeyTransportFailed
from sealed_bid.hsm.signer import TenderKeyTransport, TokenSigner
from sealed_bid.hsm.token import RECEIPT_KEY, Token

pytestmark = pytest.mark.token


def _self_signed_placeholder(token: Token) -> bytes:
    """A certificate for the receipt key's public key; its issuer signature is a throw-away
    software key's, which is all a Signer needs to carry."""
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sealed Bid receipts (test)")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(token.public_key(RECEIPT_KEY))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def tender(token: Token) -> Iterator[str]:
    tender_id = "T-transport-" + secrets.token_hex(4)
    token.generate_tender_key(tender_id)
    yield tender_id
    token.destroy_tender_key(tender_id)


def test_token_signer_signs_with_the_certified_key(token: Token) -> None:
    certificate_der = _self_signed_placeholder(token)
    signer: Signer = TokenSigner(token, RECEIPT_KEY, certificate_der)
    assert signer.signature_algorithm == "sha256_rsa"
    assert signer.certificate_der == certificate_der
    signature = signer.sign(b"receipt body")
    certified_key = x509.load_der_x509_certificate(signer.certificate_der).public_key()
    assert isinstance(certified_key, rsa.RSAPublicKey)
    certified_key.verify(signature, b"receipt body", padding.PKCS1v15(), hashes.SHA256())


def test_tender_key_transport_recovers_the_content_key(token: Token, tender: str) -> None:
    transport: KeyTransport = TenderKeyTransport(token, tender)
    content_key = secrets.token_bytes(32)
    encrypted = token.tender_public_key(tender).encrypt(
        content_key,
        padding.OAEP(
            mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303 - SoftHSM decrypts only OAEP-SHA1
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        ),
    )
    before = token.private_key_uses.get(tender, 0)
    assert transport.decrypt_key(encrypted, "sha1") == content_key
    assert token.private_key_uses[tender] == before + 1


def test_tender_key_transport_failure_is_key_transport_failed(token: Token, tender: str) -> None:
    with pytest.raises(KeyTransportFailed):
        TenderKeyTransport(token, tender).decrypt_key(b"\x00" * 384, "sha1")
