"""Quorum custody of a tender key: provisioning at creation, shares at the opening.

At creation a random PIN is generated, the tender key is generated on a token of its own
under that PIN, the PIN is split K-of-N and each share is encrypted to one officer's
certificate; the PIN and the shares in clear are dropped when ``provision_quorum`` returns
(nothing but the encrypted shares and their commitments is stored).

At the opening, officers present their decrypted shares (``share_desk``); the PIN is
rebuilt in memory by ``unlock_quorum_key`` and dropped with the login.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from sealed_bid.crypto.share_envelope import seal_share
from sealed_bid.domain.custody import (
    DEFAULT_RESPONSE_WINDOW_SECONDS,
    SCHEDULED,
    OfficerSpec,
    UnlockPolicy,
)
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.shares import combine_pin, new_pin, split_pin
from sealed_bid.errors import ConfigError, QuorumNotMet
from sealed_bid.hsm.quorum_token import QuorumKeySession, QuorumTokens
from sealed_bid.service.share_desk import PresentedShare
from sealed_bid.storage.custody_models import TenderCustody, TenderOfficer


@dataclass(frozen=True)
class ProvisionedQuorum:
    public_key: rsa.RSAPublicKey
    token_label: str
    officers: tuple[TenderOfficer, ...]
    """Rows to store: each officer's encrypted share and commitment."""


def provision_quorum(
    tokens: QuorumTokens, tender_id: TenderId, policy: UnlockPolicy
) -> ProvisionedQuorum:
    """Create the tender's own token and key under a fresh PIN, split it among the
    officers and encrypt each share to its officer. Returns what may be stored."""
    pin = new_pin()
    records = split_pin(tender_id, pin.encode("ascii"), policy.threshold, policy.total)
    # Seal every share before the token exists: a certificate that cannot receive a share
    # then fails the creation without leaving a token behind.
    rows = tuple(
        TenderOfficer(
            tender_id=tender_id,
            share_index=officer.index,
            subject=officer.subject,
            certificate_der=officer.certificate_der,
            certificate_sha256=officer.certificate_sha256,
            sealed_share=seal_share(record.to_bytes(), officer.certificate_der),
            commitment=record.commitment(),
        )
        for officer, record in zip(policy.officers, records, strict=True)
    )
    key = tokens.create(tender_id, pin)
    del pin, records
    return ProvisionedQuorum(public_key=key.public_key, token_label=key.token_label, officers=rows)


@contextmanager
def unlock_quorum_key(
    tokens: QuorumTokens | None, tender_id: TenderId, threshold: int, shares: list[PresentedShare]
) -> Iterator[QuorumKeySession]:
    """Rebuild the PIN from at least ``threshold`` shares, log in to the tender's token and
    yield the key session; the PIN lives only for the duration of the login call."""
    if tokens is None:
        raise ConfigError("this service has no quorum token support configured")
    if len(shares) < threshold:
        raise QuorumNotMet(
            f"{len(shares)} of the {threshold} shares needed have been presented",
            tender_id=tender_id,
        )
    pin = combine_pin([s.record for s in shares]).decode("ascii")
    session = tokens.open(tender_id, pin)
    del pin
    with session:
        yield session


def load_unlock_policy(session: Session, tender_id: str) -> UnlockPolicy:
    """The tender's unlock policy as stored (``scheduled`` when it has no custody row)."""
    custody = session.get(TenderCustody, tender_id)
    if custody is None or custody.policy != "quorum":
        return SCHEDULED
    officers = session.scalars(
        select(TenderOfficer)
        .where(TenderOfficer.tender_id == tender_id)
        .order_by(TenderOfficer.share_index)
    )
    return UnlockPolicy(
        kind="quorum",
        threshold=custody.threshold,
        officers=tuple(OfficerSpec(o.share_index, o.subject, o.certificate_der) for o in officers),
    )


def load_response_window(session: Session, tender_id: str) -> int:
    """Seconds after the record during which bidders may confirm or object."""
    custody = session.get(TenderCustody, tender_id)
    return DEFAULT_RESPONSE_WINDOW_SECONDS if custody is None else custody.response_window_seconds
