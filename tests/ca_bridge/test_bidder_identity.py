"""BidderIdentity: what the certificate names, and what "the same bidder" means."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from ca_bridge.identity import BidderIdentity, is_valid_uscc, uscc_check_character
from sealed_bid.crypto.certs import issue_certificate, signing_profile
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.devpki import DevPki, load_signer

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
SignerCerts = tuple[bytes, list[bytes]]


@pytest.fixture(scope="module")
def issuing_signer(dev_pki: DevPki) -> SoftwareSigner:
    return load_signer(dev_pki.bidder_issuing)


def issue(signer: SoftwareSigner, subject: x509.Name, now: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return issue_certificate(
        signer, subject, key.public_key(), now, now + timedelta(days=30), None, signing_profile()
    )


def test_identity_reads_organisation_name_and_credit_code(
    signer_certs: Callable[[str], SignerCerts], dev_pki: DevPki
) -> None:
    leaf, _ = signer_certs("alpha")

    identity = BidderIdentity.from_certificate(leaf)

    alpha = dev_pki.bidders["alpha"]
    assert identity.organisation == alpha.company
    assert identity.common_name == alpha.company
    assert identity.credit_code == alpha.credit_code
    assert identity.identity_key == b"uscc:" + alpha.credit_code.encode()


def test_renewed_certificate_with_same_credit_code_is_the_same_bidder(
    signer_certs: Callable[[str], SignerCerts], issuing_signer: SoftwareSigner, pki_now: datetime
) -> None:
    old_der, _ = signer_certs("alpha")
    old = BidderIdentity.from_certificate(old_der)
    subject = x509.load_der_x509_certificate(old_der).subject

    renewed = BidderIdentity.from_certificate(issue(issuing_signer, subject, pki_now))

    assert renewed.same_bidder(old)
    assert renewed.certificate_sha256 != old.certificate_sha256


def test_another_company_is_another_bidder(
    signer_certs: Callable[[str], SignerCerts],
) -> None:
    alpha = BidderIdentity.from_certificate(signer_certs("alpha")[0])
    beta = BidderIdentity.from_certificate(signer_certs("beta")[0])

    assert not alpha.same_bidder(beta)


def test_without_credit_code_identity_is_issuer_and_subject(
    issuing_signer: SoftwareSigner, dev_pki: DevPki, pki_now: datetime
) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "No Code Ltd"),
            x509.NameAttribute(NameOID.COMMON_NAME, "No Code Ltd"),
        ]
    )
    first = BidderIdentity.from_certificate(issue(issuing_signer, subject, pki_now))
    renewal = BidderIdentity.from_certificate(issue(issuing_signer, subject, pki_now))
    rogue = load_signer(dev_pki.rogue_ca)
    namesake = BidderIdentity.from_certificate(issue(rogue, subject, pki_now))

    assert first.credit_code is None
    assert first.identity_key.startswith(b"dn:")
    assert first.same_bidder(renewal)
    assert not first.same_bidder(namesake)


def test_serial_number_that_is_not_a_valid_uscc_is_kept_but_not_a_credit_code(
    issuing_signer: SoftwareSigner, pki_now: datetime
) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Typo Ltd"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "91410200MA0000001X"),
        ]
    )

    identity = BidderIdentity.from_certificate(issue(issuing_signer, subject, pki_now))

    assert identity.credit_code is None
    assert identity.subject_serial_number == "91410200MA0000001X"
    assert identity.identity_key.startswith(b"dn:")


@pytest.mark.parametrize("code", ["9144030071526726XG", "914403001922038216", "91110000802100433B"])
def test_published_credit_codes_have_valid_check_characters(code: str) -> None:
    assert is_valid_uscc(code)


@given(st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17), st.data())
def test_any_single_character_change_breaks_the_check(prefix: str, data: st.DataObject) -> None:
    code = prefix + uscc_check_character(prefix)
    position = data.draw(st.integers(min_value=0, max_value=17))
    replacement = data.draw(st.sampled_from(USCC_CHARSET.replace(code[position], "")))
    changed = code[:position] + replacement + code[position + 1 :]

    assert is_valid_uscc(code)
    assert not is_valid_uscc(changed)


@pytest.mark.parametrize(
    "value", ["", "91410200MA0000001", "91410200MA00000013X", "9141O200MA00000013"]
)
def test_malformed_credit_codes_are_invalid(value: str) -> None:
    assert not is_valid_uscc(value)
