"""validate_signer: what a bid signer's certificate must satisfy, and the exact codes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from ca_bridge import errors
from ca_bridge.trust_store import CaMaterial, TrustStore
from ca_bridge.validation import SignerPolicy, SignerValidation, validate_signer
from sealed_bid.devpki import BIDDER_CA_ID, DevPki

SignerCerts = tuple[bytes, list[bytes]]
LoadSigner = Callable[[str], SignerCerts]

REQUIRE = SignerPolicy(revocation="require")
SOFT = SignerPolicy(revocation="soft-fail")


def validate(
    load: LoadSigner,
    name: str,
    at: datetime,
    trust: TrustStore,
    accepted: tuple[str, ...] = (BIDDER_CA_ID,),
    policy: SignerPolicy = REQUIRE,
) -> SignerValidation:
    leaf, chain = load(name)
    return validate_signer(leaf, chain, at, trust, accepted, policy)


@pytest.mark.parametrize("name", ["alpha", "beta", "gamma", "delta"])
def test_good_bidder_validates_with_its_credit_code(
    name: str,
    signer_certs: LoadSigner,
    trust_store: TrustStore,
    dev_pki: DevPki,
    pki_now: datetime,
) -> None:
    result = validate(signer_certs, name, pki_now, trust_store)

    assert result.ca_id == BIDDER_CA_ID
    assert result.identity.credit_code == dev_pki.bidders[name].credit_code
    assert result.identity.organisation == dev_pki.bidders[name].company
    assert result.warnings == ()


def test_validation_describes_chain_leaf_first_and_the_crls_used(
    signer_certs: LoadSigner,
    trust_store: TrustStore,
    ca_ders: dict[str, bytes],
    pki_now: datetime,
) -> None:
    leaf, _ = signer_certs("alpha")

    result = validate(signer_certs, "alpha", pki_now, trust_store)

    sha = [hashlib.sha256(d).hexdigest() for d in (leaf, ca_ders["issuing"], ca_ders["root"])]
    assert result.chain == tuple(sha)
    assert set(result.revocation_evidence) == {ca_ders["issuing_crl"], ca_ders["root_crl"]}
    assert result.validated_at == pki_now
    assert result.identity.certificate_sha256 == hashlib.sha256(leaf).digest()
    assert any(check.startswith("revocation:require") for check in result.checks)


@pytest.mark.parametrize(
    ("name", "error", "code"),
    [
        ("revoked", errors.SignerRevoked, "SIGNER_REVOKED"),
        ("expired", errors.SignerExpired, "SIGNER_EXPIRED"),
        ("not_yet_valid", errors.SignerNotYetValid, "SIGNER_NOT_YET_VALID"),
        ("wrong_key_usage", errors.SignerKeyUsage, "SIGNER_KEY_USAGE"),
        ("untrusted", errors.SignerUntrusted, "SIGNER_UNTRUSTED"),
    ],
)
def test_bad_bidder_is_refused_with_its_exact_code(
    name: str,
    error: type[errors.CaBridgeError],
    code: str,
    signer_certs: LoadSigner,
    trust_store: TrustStore,
    pki_now: datetime,
) -> None:
    with pytest.raises(error) as caught:
        validate(signer_certs, name, pki_now, trust_store)

    assert caught.value.code == code
    assert caught.value.grpc_status == "PERMISSION_DENIED"


def test_refusal_messages_never_name_the_bidder(
    signer_certs: LoadSigner, trust_store: TrustStore, dev_pki: DevPki, pki_now: datetime
) -> None:
    for name in ("revoked", "expired", "untrusted", "wrong_key_usage"):
        with pytest.raises(errors.CaBridgeError) as caught:
            validate(signer_certs, name, pki_now, trust_store)
        text = f"{caught.value} {caught.value.context}"
        assert dev_pki.bidders[name].company not in text
        assert dev_pki.bidders[name].credit_code not in text


def test_revoked_refusal_carries_revocation_time_and_reason(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.SignerRevoked) as caught:
        validate(signer_certs, "revoked", pki_now, trust_store)

    assert caught.value.context["reason"] == "key_compromise"
    revoked_at = caught.value.context["revoked_at"]
    assert isinstance(revoked_at, datetime)
    assert revoked_at < pki_now
    assert "obtain a new certificate" in caught.value.message


def test_expired_message_says_to_renew(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.SignerExpired) as caught:
        validate(signer_certs, "expired", pki_now, trust_store)

    assert "renew your certificate" in caught.value.message


def test_missing_crl_under_require_is_REVOCATION_UNAVAILABLE(
    signer_certs: LoadSigner, ca_ders: dict[str, bytes], pki_now: datetime
) -> None:
    no_crls = TrustStore(
        cas={
            BIDDER_CA_ID: CaMaterial(
                anchors=(ca_ders["root"],), intermediates=(ca_ders["issuing"],)
            )
        }
    )

    with pytest.raises(errors.RevocationUnavailable) as caught:
        validate(signer_certs, "alpha", pki_now, no_crls)

    assert caught.value.code == "REVOCATION_UNAVAILABLE"
    assert caught.value.grpc_status == "UNAVAILABLE"


def test_missing_crl_for_the_intermediate_under_require_is_REVOCATION_UNAVAILABLE(
    signer_certs: LoadSigner, ca_ders: dict[str, bytes], pki_now: datetime
) -> None:
    leaf_crl_only = TrustStore(
        cas={
            BIDDER_CA_ID: CaMaterial(
                anchors=(ca_ders["root"],),
                intermediates=(ca_ders["issuing"],),
                crls=(ca_ders["issuing_crl"],),
            )
        }
    )

    with pytest.raises(errors.RevocationUnavailable):
        validate(signer_certs, "alpha", pki_now, leaf_crl_only)


def test_missing_crl_under_soft_fail_is_accepted_with_warnings(
    signer_certs: LoadSigner, ca_ders: dict[str, bytes], pki_now: datetime
) -> None:
    no_crls = TrustStore(
        cas={
            BIDDER_CA_ID: CaMaterial(
                anchors=(ca_ders["root"],), intermediates=(ca_ders["issuing"],)
            )
        }
    )

    result = validate(signer_certs, "alpha", pki_now, no_crls, policy=SOFT)

    assert result.revocation_evidence == ()
    assert len(result.warnings) == 2  # the leaf and the issuing CA went unchecked


def test_soft_fail_still_refuses_a_revoked_signer_when_the_crl_is_there(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.SignerRevoked):
        validate(signer_certs, "revoked", pki_now, trust_store, policy=SOFT)


@pytest.mark.parametrize("policy", [REQUIRE, SOFT], ids=["require", "soft-fail"])
def test_stale_crl_is_REVOCATION_UNAVAILABLE(
    policy: SignerPolicy, signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    after_next_update = pki_now + timedelta(days=8)

    with pytest.raises(errors.RevocationUnavailable):
        validate(signer_certs, "alpha", after_next_update, trust_store, policy=policy)


def test_empty_accepted_ca_list_is_refused_never_allow_all(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.SignerPolicy) as caught:
        validate(signer_certs, "alpha", pki_now, trust_store, accepted=())

    assert caught.value.code == "SIGNER_POLICY"


def test_accepted_ca_missing_from_the_store_is_refused_when_it_is_the_only_one(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.SignerPolicy):
        validate(signer_certs, "alpha", pki_now, trust_store, accepted=("gone-ca",))


def test_accepted_ca_missing_from_the_store_is_skipped_with_a_warning(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    result = validate(
        signer_certs, "alpha", pki_now, trust_store, accepted=("gone-ca", BIDDER_CA_ID)
    )

    assert result.ca_id == BIDDER_CA_ID
    assert any("gone-ca" in w for w in result.warnings)


def test_only_the_tenders_accepted_cas_are_trusted(
    signer_certs: LoadSigner, ca_ders: dict[str, bytes], trust_store: TrustStore, pki_now: datetime
) -> None:
    two_cas = TrustStore(
        cas={**trust_store.cas, "rogue-ca": CaMaterial(anchors=(ca_ders["rogue"],))}
    )

    with pytest.raises(errors.SignerUntrusted):
        validate(signer_certs, "untrusted", pki_now, two_cas, accepted=(BIDDER_CA_ID,))
    with pytest.raises(errors.SignerUntrusted):
        validate(signer_certs, "alpha", pki_now, two_cas, accepted=("rogue-ca",))
    accepted = validate(
        signer_certs, "untrusted", pki_now, two_cas, accepted=("rogue-ca",), policy=SOFT
    )
    assert accepted.ca_id == "rogue-ca"


def test_specific_verdict_of_the_issuing_ca_wins_over_other_cas_no_path(
    signer_certs: LoadSigner, ca_ders: dict[str, bytes], trust_store: TrustStore, pki_now: datetime
) -> None:
    two_cas = TrustStore(
        cas={**trust_store.cas, "a-rogue-ca": CaMaterial(anchors=(ca_ders["rogue"],))}
    )

    with pytest.raises(errors.SignerRevoked):
        validate(signer_certs, "revoked", pki_now, two_cas, accepted=("a-rogue-ca", BIDDER_CA_ID))


def test_intermediate_from_the_cms_completes_the_path(
    signer_certs: LoadSigner, ca_ders: dict[str, bytes], trust_store: TrustStore, pki_now: datetime
) -> None:
    anchors_only = TrustStore(
        cas={
            BIDDER_CA_ID: CaMaterial(
                anchors=(ca_ders["root"],), crls=(ca_ders["issuing_crl"], ca_ders["root_crl"])
            )
        }
    )
    leaf, _ = signer_certs("alpha")

    result = validate_signer(
        leaf, [ca_ders["issuing"]], pki_now, anchors_only, [BIDDER_CA_ID], REQUIRE
    )
    assert result.ca_id == BIDDER_CA_ID
    with pytest.raises(errors.SignerUntrusted):
        validate_signer(leaf, [], pki_now, anchors_only, [BIDDER_CA_ID], REQUIRE)


def test_ca_certificate_cannot_be_a_bid_signer(
    ca_ders: dict[str, bytes], trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.SignerKeyUsage):
        validate_signer(ca_ders["issuing"], [], pki_now, trust_store, [BIDDER_CA_ID], REQUIRE)


def test_required_extended_key_usage_absent_is_SIGNER_KEY_USAGE(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    email_protection = SignerPolicy(extended_key_usage=frozenset({"1.3.6.1.5.5.7.3.4"}))

    with pytest.raises(errors.SignerKeyUsage):
        validate(signer_certs, "alpha", pki_now, trust_store, policy=email_protection)


def test_non_repudiation_alone_is_an_acceptable_policy(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    policy = SignerPolicy(key_usage=frozenset({"non_repudiation"}))

    result = validate(signer_certs, "beta", pki_now, trust_store, policy=policy)

    assert "key_usage:any-of non_repudiation" in result.checks


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_usage": frozenset()},
        {"key_usage": frozenset({"key_encipherment"})},
        {"extended_key_usage": frozenset()},
        {"revocation": "none"},
    ],
)
def test_weak_or_empty_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(errors.SignerPolicy):
        SignerPolicy(**kwargs)  # type: ignore[arg-type]


def test_garbage_certificate_is_CERTIFICATE_MALFORMED(
    trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(errors.CertificateMalformed) as caught:
        validate_signer(b"\x30\x03\x02\x01\x01", [], pki_now, trust_store, [BIDDER_CA_ID], REQUIRE)

    assert caught.value.grpc_status == "INVALID_ARGUMENT"


def test_garbage_in_the_cms_certificates_is_CERTIFICATE_MALFORMED(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    leaf, _ = signer_certs("alpha")

    with pytest.raises(errors.CertificateMalformed):
        validate_signer(leaf, [b"not a certificate"], pki_now, trust_store, [BIDDER_CA_ID], REQUIRE)


def test_validation_time_must_be_timezone_aware(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        validate(signer_certs, "alpha", pki_now.replace(tzinfo=None), trust_store)


def test_validate_signer_works_when_called_inside_an_event_loop(
    signer_certs: LoadSigner, trust_store: TrustStore, pki_now: datetime
) -> None:
    async def from_async_code() -> SignerValidation:
        return validate(signer_certs, "beta", pki_now, trust_store)

    assert asyncio.run(from_async_code()).ca_id == BIDDER_CA_ID
