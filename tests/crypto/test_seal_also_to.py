"""Bidder participation in the SDK: a bid sealed also to the bidder's own certificate; the
bidder recovers the content key with its own key; the envelope opens with that key as it
does with the tender key, for AuthEnvelopedData and EnvelopedData, also when OpenSSL
made it."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sealed_bid.crypto.envelope import decrypt_envelope, inspect_envelope, seal_envelope
from sealed_bid.crypto.released_key import ReleasedKeyTransport, recover_own_content_key
from sealed_bid.crypto.seal import ENVELOPE_NAME, open_bid, seal_bid
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.errors import (
    AlgorithmRefused,
    DecryptionFailed,
    KeyTransportFailed,
    RecipientMismatch,
)

from .conftest import Party


def _rsa_key(party: Party) -> rsa.RSAPrivateKey:
    assert isinstance(party.key, rsa.RSAPrivateKey)
    return party.key


@pytest.fixture
def sealed_to_both(bidder: Party, tender: Party, package_path: Path, tmp_path: Path) -> Path:
    sealed = seal_bid(
        package_path,
        bidder.signer,
        tender.certificate_der,
        tmp_path / "out",
        also_to=(bidder.certificate_der,),
    )
    return sealed.envelope_path


def test_also_to_adds_a_recipient_and_both_keys_open_the_bid(
    sealed_to_both: Path, bidder: Party, tender: Party, form: BidForm, tmp_path: Path
) -> None:
    info = inspect_envelope(sealed_to_both)
    assert [r.matches(tender.certificate_der) for r in info.recipients] == [True, False]
    assert [r.matches(bidder.certificate_der) for r in info.recipients] == [False, True]
    assert {r.oaep_hash for r in info.recipients} == {"sha1"}

    by_tender = open_bid(
        sealed_to_both, tender.key_transport, tender.certificate_der, tmp_path / "w1"
    )
    content_key = recover_own_content_key(sealed_to_both, bidder.certificate_der, _rsa_key(bidder))
    assert len(content_key) == 32
    by_bidder = open_bid(
        sealed_to_both, ReleasedKeyTransport(content_key), tender.certificate_der, tmp_path / "w2"
    )
    assert by_bidder.package.form == by_tender.package.form == form
    assert by_bidder.inner == by_tender.inner
    assert list((tmp_path / "w2").iterdir()) == []
    assert "withheld" in repr(ReleasedKeyTransport(content_key))
    assert content_key.hex() not in repr(ReleasedKeyTransport(content_key))


def test_a_wrong_released_key_is_DECRYPTION_FAILED_and_leaves_no_plaintext(
    sealed_to_both: Path, tender: Party, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    with pytest.raises(DecryptionFailed):
        open_bid(sealed_to_both, ReleasedKeyTransport(os.urandom(32)), tender.certificate_der, work)
    assert list(work.iterdir()) == []
    with pytest.raises(KeyTransportFailed):  # not an AES-256 key
        open_bid(sealed_to_both, ReleasedKeyTransport(os.urandom(16)), tender.certificate_der, work)


def test_a_released_key_opens_EnvelopedData_too(
    bidder: Party, tender: Party, package_path: Path, tmp_path: Path
) -> None:
    content = package_path.read_bytes()
    envelope = tmp_path / "cbc.p7m"
    with envelope.open("wb") as dst:
        seal_envelope(
            io.BytesIO(content),
            dst,
            [tender.certificate_der, bidder.certificate_der],
            content_algorithm="aes256_cbc",
        )
    info = inspect_envelope(envelope)
    assert info.content_type == "envelopedData"
    content_key = recover_own_content_key(envelope, bidder.certificate_der, _rsa_key(bidder))
    tenders = [r for r in info.recipients if r.matches(tender.certificate_der)]
    plain = io.BytesIO()
    decrypt_envelope(envelope, info, tenders[0], ReleasedKeyTransport(content_key), plain)
    assert plain.getvalue() == content


def test_recovering_needs_a_recipient_for_ones_own_certificate_and_its_key(
    sealed_to_both: Path, bidder: Party, other_tender: Party
) -> None:
    with pytest.raises(RecipientMismatch):
        recover_own_content_key(
            sealed_to_both, other_tender.certificate_der, _rsa_key(other_tender)
        )
    with pytest.raises(KeyTransportFailed):
        recover_own_content_key(sealed_to_both, bidder.certificate_der, _rsa_key(other_tender))


def test_an_EC_certificate_is_refused_clearly_and_nothing_is_written(
    bidder: Party, ec_bidder: Party, tender: Party, package_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(AlgorithmRefused, match="key agreement"):
        seal_bid(
            package_path,
            bidder.signer,
            tender.certificate_der,
            out,
            also_to=(ec_bidder.certificate_der,),
        )
    assert not (out / ENVELOPE_NAME).exists()


@pytest.mark.openssl
@pytest.mark.parametrize("cipher", ["-aes-256-gcm", "-aes-256-cbc"])
def test_an_openssl_envelope_to_two_recipients_opens_with_the_released_key(
    bidder: Party, tender: Party, package_path: Path, tmp_path: Path, cipher: str
) -> None:
    envelope = tmp_path / "bid.p7m"
    subprocess.run(
        [
            *("openssl", "cms", "-encrypt", "-binary", "-outform", "DER", cipher),
            *("-in", str(package_path), "-out", str(envelope)),
            *("-recip", str(tender.cert_pem)),
            *("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha1"),
            *("-recip", str(bidder.cert_pem)),
            *("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"),
        ],
        check=True,
        capture_output=True,
    )
    info = inspect_envelope(envelope)
    assert sorted(r.oaep_hash or "" for r in info.recipients) == ["sha1", "sha256"]
    content_key = recover_own_content_key(envelope, bidder.certificate_der, _rsa_key(bidder))
    tenders = [r for r in info.recipients if r.matches(tender.certificate_der)]
    by_bidder, by_tender = io.BytesIO(), io.BytesIO()
    decrypt_envelope(envelope, info, tenders[0], ReleasedKeyTransport(content_key), by_bidder)
    decrypt_envelope(envelope, info, tenders[0], tender.key_transport, by_tender)
    assert by_bidder.getvalue() == by_tender.getvalue() == package_path.read_bytes()


@pytest.mark.openssl
def test_openssl_decrypts_the_sdks_envelope_with_the_bidders_own_key(
    sealed_to_both: Path, bidder: Party, package_path: Path, tmp_path: Path
) -> None:
    inner = tmp_path / "inner.p7s"
    done = subprocess.run(
        [
            *("openssl", "cms", "-decrypt", "-binary", "-inform", "DER"),
            *("-in", str(sealed_to_both), "-out", str(inner)),
            *("-recip", str(bidder.cert_pem), "-inkey", str(bidder.key_pem)),
        ],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    verified = subprocess.run(
        [
            *("openssl", "cms", "-verify", "-noverify", "-binary", "-inform", "DER"),
            *("-in", str(inner), "-out", str(tmp_path / "package.zip")),
        ],
        capture_output=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert (tmp_path / "package.zip").read_bytes() == package_path.read_bytes()
