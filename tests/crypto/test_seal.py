"""The bidder SDK seals; open_bid reverses it and never leaves plaintext behind."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from sealed_bid.crypto.envelope import seal_envelope
from sealed_bid.crypto.seal import ENVELOPE_NAME, open_bid, seal_bid
from sealed_bid.crypto.signed_data import sign_attached, verify_detached
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.errors import (
    DecryptionFailed,
    InnerSignatureInvalid,
    KeyTransportFailed,
    RecipientMismatch,
)

from .conftest import Party


@pytest.mark.parametrize("who", ["bidder", "ec_bidder"])
def test_a_sealed_bid_opens_to_its_form_and_documents(
    who: str,
    request: pytest.FixtureRequest,
    tender: Party,
    package_path: Path,
    form: BidForm,
    documents: dict[str, Path],
    signing_time: datetime,
    tmp_path: Path,
) -> None:
    party: Party = request.getfixturevalue(who)
    sealed = seal_bid(
        package_path,
        party.signer,
        tender.certificate_der,
        tmp_path / "out",
        signing_time=signing_time,
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [ENVELOPE_NAME]
    envelope = sealed.envelope_path.read_bytes()
    assert sealed.size == len(envelope)
    assert sealed.sha256 == hashlib.sha256(envelope).hexdigest()
    outer = verify_detached(sealed.outer_signature_der, bytes.fromhex(sealed.sha256))
    assert outer.signer_certificate_der == party.certificate_der

    opened = open_bid(
        sealed.envelope_path, tender.key_transport, tender.certificate_der, tmp_path / "work"
    )
    assert opened.inner.signer_certificate_der == party.certificate_der
    assert opened.inner.signing_time == signing_time
    assert opened.package.form == form
    assert {d.name: d.sha256 for d in opened.package.documents} == {
        name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in documents.items()
    }
    assert list((tmp_path / "work").iterdir()) == []


@pytest.fixture(scope="module")
def sealed_path(
    tmp_path_factory: pytest.TempPathFactory, bidder: Party, tender: Party, package_path: Path
) -> Path:
    return seal_bid(
        package_path, bidder.signer, tender.certificate_der, tmp_path_factory.mktemp("sealed")
    ).envelope_path


def test_another_tenders_key_is_RECIPIENT_MISMATCH(
    sealed_path: Path, other_tender: Party, tmp_path: Path
) -> None:
    with pytest.raises(RecipientMismatch):
        open_bid(sealed_path, other_tender.key_transport, other_tender.certificate_der, tmp_path)


def test_a_key_that_does_not_fit_the_certificate_is_KEY_TRANSPORT_FAILED(
    sealed_path: Path, tender: Party, other_tender: Party, tmp_path: Path
) -> None:
    with pytest.raises(KeyTransportFailed):
        open_bid(sealed_path, other_tender.key_transport, tender.certificate_der, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_envelope_is_DECRYPTION_FAILED_and_leaves_no_plaintext(
    sealed_path: Path, tender: Party, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered.p7m"
    data = bytearray(sealed_path.read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    work = tmp_path / "work"
    with pytest.raises(DecryptionFailed):
        open_bid(tampered, tender.key_transport, tender.certificate_der, work)
    assert list(work.iterdir()) == []


def test_a_bad_inner_signature_is_INNER_SIGNATURE_INVALID(
    bidder: Party, tender: Party, package_path: Path, signing_time: datetime, tmp_path: Path
) -> None:
    inner = bytearray(sign_attached(bidder.signer, package_path.read_bytes(), signing_time))
    inner[-3] ^= 1  # the signature value
    envelope = tmp_path / "bad-inner.p7m"
    with envelope.open("wb") as dst:
        seal_envelope(io.BytesIO(bytes(inner)), dst, [tender.certificate_der])
    work = tmp_path / "work"
    with pytest.raises(InnerSignatureInvalid, match="does not verify") as caught:
        open_bid(envelope, tender.key_transport, tender.certificate_der, work)
    assert caught.value.context["cause"] == "SIGNATURE_INVALID"
    assert list(work.iterdir()) == []


@pytest.mark.openssl
class TestOpensslInterop:
    def test_sdk_envelope_opens_with_openssl_alone(
        self, bidder: Party, tender: Party, package_path: Path, tmp_path: Path
    ) -> None:
        sealed = seal_bid(package_path, bidder.signer, tender.certificate_der, tmp_path)
        inner = tmp_path / "inner.p7s"
        decrypted = subprocess.run(
            [
                "openssl",
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                str(sealed.envelope_path),
                "-inkey",
                str(tender.key_pem),
                "-recip",
                str(tender.cert_pem),
                "-out",
                str(inner),
            ],
            capture_output=True,
            check=False,
        )
        assert decrypted.returncode == 0, decrypted.stderr
        package = tmp_path / "package.zip"
        verified = subprocess.run(
            [
                "openssl",
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                str(inner),
                "-out",
                str(package),
            ],
            capture_output=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
        assert package.read_bytes() == package_path.read_bytes()
        outer = tmp_path / "outer.p7s"
        outer.write_bytes(sealed.outer_signature_der)
        checked = subprocess.run(
            [
                "openssl",
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                str(outer),
                "-content",
                str(sealed.envelope_path),
                "-out",
                "/dev/null",
            ],
            capture_output=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr

    @pytest.mark.parametrize("cipher", ["-aes-256-gcm", "-aes-256-cbc"])
    def test_openssl_made_bid_opens_with_open_bid(
        self,
        bidder: Party,
        tender: Party,
        package_path: Path,
        form: BidForm,
        tmp_path: Path,
        cipher: str,
    ) -> None:
        inner = tmp_path / "inner.p7s"
        envelope = tmp_path / "bid.p7m"
        outer = tmp_path / "bid.p7s"
        for command in (
            [
                "openssl",
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-outform",
                "DER",
                "-md",
                "sha256",
                "-in",
                str(package_path),
                "-signer",
                str(bidder.cert_pem),
                "-inkey",
                str(bidder.key_pem),
                "-out",
                str(inner),
            ],
            [
                "openssl",
                "cms",
                "-encrypt",
                "-binary",
                "-outform",
                "DER",
                cipher,
                "-in",
                str(inner),
                "-out",
                str(envelope),
                "-recip",
                str(tender.cert_pem),
                "-keyopt",
                "rsa_padding_mode:oaep",
                "-keyopt",
                "rsa_oaep_md:sha1",
            ],
            [
                "openssl",
                "cms",
                "-sign",
                "-binary",
                "-outform",
                "DER",
                "-md",
                "sha256",
                "-in",
                str(envelope),
                "-signer",
                str(bidder.cert_pem),
                "-inkey",
                str(bidder.key_pem),
                "-out",
                str(outer),
            ],
        ):
            subprocess.run(command, check=True, capture_output=True)
        digest = hashlib.sha256(envelope.read_bytes()).digest()
        outer_facts = verify_detached(outer.read_bytes(), digest)
        opened = open_bid(envelope, tender.key_transport, tender.certificate_der, tmp_path / "w")
        assert opened.package.form == form
        assert opened.inner.signer_certificate_der == outer_facts.signer_certificate_der
