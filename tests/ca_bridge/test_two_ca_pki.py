"""Two independent CAs with CRL and OCSP responders on 127.0.0.1: every good bidder of
either CA is accepted, every bad case is refused with its exact code (ca_bridge API)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from ca_bridge import errors
from ca_bridge.revocation import RevocationConfig, RevocationSource
from ca_bridge.trust_store import TrustStore
from ca_bridge.validation import SignerPolicy, SignerValidation, validate_signer
from tests.ca_bridge.pki.fixtures import (
    CA_A,
    CA_B,
    TENDER_SIGNING_POLICY,
    TwoCaPki,
    shared_two_ca_pki,
)


@pytest.fixture(scope="session")
def two_ca_pki(tmp_path_factory: pytest.TempPathFactory) -> TwoCaPki:
    return shared_two_ca_pki(tmp_path_factory)


TENDER_POLICY = SignerPolicy(
    revocation="require", certificate_policies=frozenset({TENDER_SIGNING_POLICY})
)


def validate(
    pki: TwoCaPki,
    name: str,
    accepted: tuple[str, ...] = (CA_A, CA_B),
    *,
    chain: tuple[str, ...] = (),
    source: RevocationSource | None = None,
    policy: SignerPolicy = TENDER_POLICY,
) -> SignerValidation:
    return validate_signer(
        pki.cert(name),
        [pki.cert(c) for c in chain],
        datetime.now(UTC),
        pki.trust_store(),
        accepted,
        policy,
        revocation=source or RevocationSource(),
    )


@pytest.mark.parametrize(
    ("name", "ca_id", "credit_code"),
    [
        ("ca-a/good-1", CA_A, "91110000600037341L"),
        ("ca-a/good-2", CA_A, None),
        ("ca-a/nc-inside", CA_A, None),
        ("ca-b/good-1", CA_B, "91330000MA27U0KX50"),
    ],
)
def test_good_bidders_of_both_cas_are_accepted_with_fetched_evidence(
    name: str, ca_id: str, credit_code: str | None, two_ca_pki: TwoCaPki
) -> None:
    result = validate(two_ca_pki, name, (ca_id,))

    assert result.ca_id == ca_id
    assert result.identity.credit_code == credit_code
    assert result.warnings == ()
    # One item per non-anchor certificate: the leaf's and the intermediate's.
    assert len(result.revocation_records) == 2
    assert {r.source.split("/")[2] for r in result.revocation_records} == {
        two_ca_pki.server.base_url.split("/")[2]
    }
    assert result.revocation_evidence == tuple(r.der for r in result.revocation_records)


def test_good_bidder_sending_its_intermediate_is_accepted(two_ca_pki: TwoCaPki) -> None:
    result = validate(two_ca_pki, "ca-b/good-1", (CA_B,), chain=("ca-b/b-interm",))

    assert result.ca_id == CA_B


@pytest.mark.parametrize(
    ("name", "error", "code"),
    [
        ("ca-a/revoked", errors.SignerRevoked, "SIGNER_REVOKED"),
        ("ca-b/revoked", errors.SignerRevoked, "SIGNER_REVOKED"),
        ("ca-a/expired", errors.SignerExpired, "SIGNER_EXPIRED"),
        ("ca-a/not-yet-valid", errors.SignerNotYetValid, "SIGNER_NOT_YET_VALID"),
        ("ca-a/wrong-key-usage", errors.SignerKeyUsage, "SIGNER_KEY_USAGE"),
        ("ca-a/wrong-policy", errors.SignerPolicy, "SIGNER_POLICY"),
        ("rogue/unknown-ca", errors.SignerUntrusted, "SIGNER_UNTRUSTED"),
        ("ca-a/orphan", errors.SignerUntrusted, "SIGNER_UNTRUSTED"),  # broken chain
        ("ca-a/nc-outside", errors.SignerUntrusted, "SIGNER_UNTRUSTED"),  # name constraints
    ],
)
def test_bad_bidder_is_refused_with_its_exact_code(
    name: str, error: type[errors.CaBridgeError], code: str, two_ca_pki: TwoCaPki
) -> None:
    with pytest.raises(error) as caught:
        validate(two_ca_pki, name)

    assert caught.value.code == code
    assert caught.value.grpc_status == "PERMISSION_DENIED"


@pytest.mark.parametrize("name", ["ca-a/expired", "ca-a/wrong-key-usage", "rogue/unknown-ca"])
def test_a_bad_certificate_is_refused_before_any_revocation_request(
    name: str, two_ca_pki: TwoCaPki
) -> None:
    before = sum(two_ca_pki.server.requests.values())

    with pytest.raises(errors.CaBridgeError):
        validate(two_ca_pki, name)

    assert sum(two_ca_pki.server.requests.values()) == before


def test_ocsp_revoked_signer_is_refused_from_the_ocsp_answer(two_ca_pki: TwoCaPki) -> None:
    server = two_ca_pki.server
    ocsp_before, crl_before = server.count("/ca-a/ocsp/a-interm"), server.count("a-interm/latest")

    with pytest.raises(errors.SignerRevoked) as caught:
        validate(two_ca_pki, "ca-a/revoked", (CA_A,))

    assert caught.value.context["reason"] == "key_compromise"
    assert server.count("/ca-a/ocsp/a-interm") == ocsp_before + 1
    assert server.count("a-interm/latest") == crl_before


def test_crl_revoked_signer_is_refused_from_the_crl(two_ca_pki: TwoCaPki) -> None:
    server = two_ca_pki.server
    ocsp_before, crl_before = server.count("/ca-b/ocsp/"), server.count("b-interm/latest")
    crl_first = RevocationSource(RevocationConfig(prefer="crl"))

    with pytest.raises(errors.SignerRevoked) as caught:
        validate(two_ca_pki, "ca-b/revoked", (CA_B,), source=crl_first)

    assert caught.value.context["reason"] == "superseded"
    assert server.count("b-interm/latest") == crl_before + 1
    assert server.count("/ca-b/ocsp/") == ocsp_before


def test_cross_signed_intermediate_is_accepted_when_only_ca_a_is_trusted(
    two_ca_pki: TwoCaPki,
) -> None:
    result = validate_signer(
        two_ca_pki.cert("ca-b/good-1"),
        [two_ca_pki.cert("ca-b/b-interm")],  # what a CA B bidder sends
        datetime.now(UTC),
        two_ca_pki.trust_store(CA_A),
        [CA_A],
        TENDER_POLICY,
        revocation=RevocationSource(),
    )

    assert result.ca_id == CA_A
    sha = [
        hashlib.sha256(two_ca_pki.cert(n)).hexdigest()
        for n in ("ca-b/good-1", "ca-a/b-interm-cross", "ca-a/a-root")
    ]
    assert result.chain == tuple(sha)


def test_ca_b_bidder_is_untrusted_when_only_ca_b_is_accepted_but_not_stored(
    two_ca_pki: TwoCaPki,
) -> None:
    with pytest.raises(errors.SignerPolicy):
        validate_signer(
            two_ca_pki.cert("ca-b/good-1"),
            [],
            datetime.now(UTC),
            two_ca_pki.trust_store(CA_A),
            [CA_B],
            TENDER_POLICY,
            revocation=RevocationSource(),
        )


def test_without_a_policy_requirement_the_test_policy_certificate_is_accepted(
    two_ca_pki: TwoCaPki,
) -> None:
    result = validate(two_ca_pki, "ca-a/wrong-policy", (CA_A,), policy=SignerPolicy())

    assert result.ca_id == CA_A


def test_stored_crls_still_work_without_any_network(two_ca_pki: TwoCaPki) -> None:
    crls = (two_ca_pki.crl(CA_A, "a-root"), two_ca_pki.crl(CA_A, "a-interm"))
    store = TrustStore(cas={CA_A: two_ca_pki.material(CA_A, crls=crls)})
    before = sum(two_ca_pki.server.requests.values())
    now = datetime.now(UTC)

    good = validate_signer(two_ca_pki.cert("ca-a/good-1"), [], now, store, [CA_A], TENDER_POLICY)
    with pytest.raises(errors.SignerRevoked):
        validate_signer(two_ca_pki.cert("ca-a/revoked"), [], now, store, [CA_A], TENDER_POLICY)

    assert set(good.revocation_evidence) == set(crls)
    assert sum(two_ca_pki.server.requests.values()) == before


def test_a_current_stored_crl_is_used_instead_of_fetching(two_ca_pki: TwoCaPki) -> None:
    crls = (two_ca_pki.crl(CA_A, "a-root"), two_ca_pki.crl(CA_A, "a-interm"))
    store = TrustStore(cas={CA_A: two_ca_pki.material(CA_A, crls=crls)})
    before = sum(two_ca_pki.server.requests.values())

    result = validate_signer(
        two_ca_pki.cert("ca-a/good-1"),
        [],
        datetime.now(UTC),
        store,
        [CA_A],
        TENDER_POLICY,
        revocation=RevocationSource(),
    )

    assert {r.source for r in result.revocation_records} == {"trust-store"}
    assert sum(two_ca_pki.server.requests.values()) == before
