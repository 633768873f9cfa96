"""Checks shared by submission and withdrawal: the signature's time, and the signer's
certificate (through ca_bridge) — the outer signer is who the bidder is.

Never stores anything: what it describes of a signer is sealed by the caller (ADR 0016)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_bridge.identity import BidderIdentity
from ca_bridge.validation import SignerPolicy, SignerValidation, validate_signer
from sealed_bid.crypto.signed_data import SignatureFacts
from sealed_bid.domain.tender import SIGNATURE_ALGORITHMS
from sealed_bid.errors import AlgorithmRefused, SigningTimeInvalid
from sealed_bid.service.context import ServiceContext


def policy_for(
    revocation_policy: str,
    certificate_policies: Sequence[str] = (),
    extended_key_usages: Sequence[str] = (),
) -> SignerPolicy:
    """The signer policy of a tender: signing key usage, its revocation policy, the
    certificate policies (any one) a bidder's chain must be valid for, and the extended
    key usages (any one) the signer's certificate must carry."""
    return SignerPolicy(
        revocation="soft-fail" if revocation_policy == "soft-fail" else "require",
        certificate_policies=frozenset(certificate_policies) or None,
        extended_key_usage=frozenset(extended_key_usages) or None,
    )


def require_signing_time(facts: SignatureFacts, now: datetime, skew_seconds: int) -> datetime:
    """The signature's signingTime orders a bidder's submissions; it must be present and
    close to the service clock, so an old signature cannot be presented as new."""
    if facts.signing_time is None:
        raise SigningTimeInvalid("the signature has no signingTime attribute; sign again")
    skew = timedelta(seconds=skew_seconds)
    if abs(facts.signing_time - now) > skew:
        raise SigningTimeInvalid(
            f"the signature's signingTime is more than {skew_seconds} s from the service time;"
            " check your clock and sign again",
            signing_time=facts.signing_time,
        )
    return facts.signing_time


def require_signature_algorithm(facts: SignatureFacts) -> None:
    if facts.signature_algorithm not in SIGNATURE_ALGORITHMS:
        raise AlgorithmRefused(
            f"signature algorithm {facts.signature_algorithm} is not accepted; use one of "
            + ", ".join(SIGNATURE_ALGORITHMS)
        )


def identify(facts: SignatureFacts) -> BidderIdentity:
    return BidderIdentity.from_certificate(facts.signer_certificate_der)


def validate(
    ctx: ServiceContext,
    facts: SignatureFacts,
    accepted_ca_ids: list[str],
    now: datetime,
    policy: SignerPolicy,
) -> SignerValidation:
    return validate_signer(
        facts.signer_certificate_der,
        facts.certificates_der,
        now,
        ctx.trust.current(),
        accepted_ca_ids,
        policy,
        revocation=ctx.revocation,
    )


@dataclass(frozen=True)
class ValidationRecord:
    """What a bid keeps of its signer's validation: the record (JSON text) and the DER of
    the evidence it names. Both are sealed with the bid's identity (``sealing``) and only
    the opening stores them in clear."""

    json: str
    evidence: tuple[bytes, ...]


def validation_record(validation: SignerValidation, policy: SignerPolicy) -> ValidationRecord:
    """What the bid keeps of its signer's validation, so the decision can be re-checked
    offline later (``ca_bridge.validation.revalidate_offline``): the chain, the checks,
    the policy, and every CRL / OCSP response used, each named by the SHA-256 of its DER
    (its blob digest once the opening stores it). No names; writes nothing: the chain's
    digests and the evidence identify the signer, so all of it is sealed."""
    evidence = [
        {
            "kind": record.kind,
            "source": record.source,
            "blob": record.sha256,
            "this_update": record.this_update.isoformat(),
            "next_update": None if record.next_update is None else record.next_update.isoformat(),
        }
        for record in validation.revocation_records
    ]
    text = json.dumps(
        {
            "format": "sealed-bid/signer-validation/v1",
            "ca_id": validation.ca_id,
            "chain": list(validation.chain),
            "checks": list(validation.checks),
            "warnings": list(validation.warnings),
            "validated_at": validation.validated_at.isoformat(),
            "policy": {
                "key_usage": sorted(policy.key_usage),
                "revocation": policy.revocation,
                "certificate_policies": sorted(policy.certificate_policies or ()),
                "extended_key_usage": sorted(policy.extended_key_usage or ()),
            },
            "evidence": evidence,
        },
        sort_keys=True,
    )
    return ValidationRecord(text, tuple(record.der for record in validation.revocation_records))
