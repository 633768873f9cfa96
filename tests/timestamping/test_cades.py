"""CAdES signature time-stamps: a token over a SignedData's signature value, added as an
unsigned attribute, leaves the signature verifiable (openssl cms -verify, our own
verifier) and can be read back and verified."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sealed_bid.crypto.certs import issue_certificate, signing_profile
from sealed_bid.crypto.signed_data import sign_attached, sign_detached, verify_attached
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.errors import SignatureMalformed, TimestampInvalid
from sealed_bid.timestamping import (
    TimestampClient,
    TimestampToken,
    add_unsigned_timestamp,
    signature_digest,
    signature_timestamp_attribute,
    signature_timestamp_of,
    verify_token,
)
from sealed_bid.timestamping.dev_tsa import DevTsaFiles, DevTsaServer

CONTENT = b'{"receipt": "R-000042", "tender": "T-1"}'


@pytest.fixture(scope="module")
def document_signer(tsa: DevTsaFiles, now: datetime) -> SoftwareSigner:
    """A receipt-style signer (RSA), issued for this test by the dev TSA root."""
    root_key = serialization.load_pem_private_key(tsa.root_key.read_bytes(), password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = issue_certificate(
        SoftwareSigner(root_key, tsa.root_der()),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Receipt Signer (test)")]),
        key.public_key(),
        now - timedelta(days=1),
        now + timedelta(days=30),
        None,
        signing_profile(),
    )
    return SoftwareSigner(key, cert)


@pytest.fixture(scope="module")
def signed(document_signer: SoftwareSigner) -> bytes:
    return sign_attached(document_signer, CONTENT, datetime.now(UTC))


@pytest.fixture(scope="module")
def token(tsa_server: DevTsaServer, roots: list[bytes], signed: bytes) -> TimestampToken:
    return TimestampClient(tsa_server.url, roots).stamp(signature_digest(signed))


def openssl_cms_verify(
    data: bytes, tsa: DevTsaFiles, tmp_path: Path
) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / "stamped.p7m"
    path.write_bytes(data)
    return subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(path),
            "-CAfile",
            str(tsa.root_cert),
            "-purpose",
            "any",
        ],
        capture_output=True,
        check=False,
    )


def test_signature_digest_is_sha256_of_the_signature_value(signed: bytes) -> None:
    signature = cms.ContentInfo.load(signed)["content"]["signer_infos"][0]["signature"].native
    assert signature_digest(signed) == hashlib.sha256(signature).digest()


@pytest.mark.openssl
def test_stamped_signature_still_verifies_and_reads_back(
    signed: bytes, token: TimestampToken, tsa: DevTsaFiles, roots: list[bytes], tmp_path: Path
) -> None:
    assert signature_timestamp_of(signed) is None
    stamped = add_unsigned_timestamp(signed, token.der)
    assert stamped != signed
    assert signature_timestamp_attribute(token).dump() in stamped

    result = openssl_cms_verify(stamped, tsa, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == CONTENT
    _, content = verify_attached(stamped)
    assert content == CONTENT

    assert signature_digest(stamped) == signature_digest(signed)
    read_back = signature_timestamp_of(stamped)
    assert read_back == token.der
    assert verify_token(read_back, signature_digest(stamped), roots) == token


@pytest.mark.openssl
def test_signed_attributes_are_untouched(signed: bytes, token: TimestampToken) -> None:
    stamped = add_unsigned_timestamp(signed, token.der)
    before = cms.ContentInfo.load(signed)["content"]["signer_infos"][0]
    after = cms.ContentInfo.load(stamped)["content"]["signer_infos"][0]
    assert after["signed_attrs"].dump() == before["signed_attrs"].dump()
    assert after["signature"].native == before["signature"].native
    attributes = after["unsigned_attrs"]
    assert [a["type"].native for a in attributes] == ["signature_time_stamp_token"]


@pytest.mark.openssl
def test_a_second_stamp_keeps_the_first(
    signed: bytes,
    token: TimestampToken,
    tsa_server: DevTsaServer,
    roots: list[bytes],
    tsa: DevTsaFiles,
    tmp_path: Path,
) -> None:
    second = TimestampClient(tsa_server.url, roots).stamp(signature_digest(signed))
    twice = add_unsigned_timestamp(add_unsigned_timestamp(signed, token.der), second.der)
    unsigned = cms.ContentInfo.load(twice)["content"]["signer_infos"][0]["unsigned_attrs"]
    assert sorted(a["values"][0].dump() for a in unsigned) == sorted([token.der, second.der])
    assert signature_timestamp_of(twice) in (token.der, second.der)
    result = openssl_cms_verify(twice, tsa, tmp_path)
    assert result.returncode == 0, result.stderr.decode()


def test_detached_signatures_work_too(
    document_signer: SoftwareSigner, tsa_server: DevTsaServer, roots: list[bytes]
) -> None:
    detached = sign_detached(document_signer, hashlib.sha256(CONTENT).digest(), datetime.now(UTC))
    stamp = TimestampClient(tsa_server.url, roots).stamp(signature_digest(detached))
    stamped = add_unsigned_timestamp(detached, stamp.der)
    assert signature_timestamp_of(stamped) == stamp.der


def test_token_over_another_signature_is_refused(
    document_signer: SoftwareSigner, token: TimestampToken
) -> None:
    other = sign_attached(document_signer, CONTENT + b" ", datetime.now(UTC))
    with pytest.raises(TimestampInvalid) as caught:
        add_unsigned_timestamp(other, token.der)
    assert caught.value.context["check"] == "imprint"


def test_not_a_signed_data(token: TimestampToken, tsa: DevTsaFiles) -> None:
    with pytest.raises(SignatureMalformed):
        signature_digest(b"\x30\x03\x02\x01\x01")
    with pytest.raises(SignatureMalformed):
        add_unsigned_timestamp(tsa.cert_der(), token.der)
