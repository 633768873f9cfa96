"""The only way to a tender's private key. A ``TenderKeyAccess`` cannot be made before the
tender's opening time by the service clock, nor without a time-stamping authority's proof
(``time_proof.TimeProof``) that the opening time has come, so no code path — service, CLI
or a direct call of this layer — can decrypt early, even on a host whose clock was set
ahead. Each use is journalled (``journal_key_use``: audit entry + key-use row, committed)
by the caller before the key is used.

The key itself is behind a ``KeyTransport``: ``PlatformTenderKey`` (the platform token, the
``scheduled`` policy; the only caller of ``Token.decrypt_tender_key``) or a quorum token
session (``hsm.quorum_token.QuorumKeySession``, the ``quorum`` policy).
"""

from __future__ import annotations

from datetime import datetime

from sealed_bid.crypto.signer import KeyTransport
from sealed_bid.domain.clock import Clock
from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import NotYetOpen, OpeningTimeNotProven
from sealed_bid.hsm.token import Token
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.time_proof import TimeProof
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import KeyOperation, KeyUse
from sealed_bid.storage.repository import Repository


class PlatformTenderKey:
    """A ``scheduled`` tender's key on the platform token."""

    def __init__(self, token: Token, tender_id: TenderId) -> None:
        self._token = token
        self._tender_id = tender_id

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        return self._token.decrypt_tender_key(self._tender_id, encrypted_key, oaep_hash)


class TenderKeyAccess:
    def __init__(
        self,
        key: KeyTransport,
        tender_id: TenderId,
        opening_time: datetime,
        clock: Clock,
        proof: TimeProof,
        officers: tuple[str, ...] = (),
    ) -> None:
        now = clock.now()
        if now < opening_time:
            raise NotYetOpen(
                f"tender {tender_id} opens at {opening_time.isoformat()}; it is now"
                f" {now.isoformat()}",
                tender_id=tender_id,
            )
        if proof.tender_id != tender_id or proof.gen_time < opening_time:
            raise OpeningTimeNotProven(
                f"no time stamp proves that tender {tender_id}'s opening time has come",
                tender_id=tender_id,
            )
        self._key = key
        self._tender_id = tender_id
        self.proof = proof
        self.officers = officers
        self.authorised_at = now

    @property
    def tender_id(self) -> TenderId:
        return self._tender_id

    @property
    def evidence(self) -> dict[str, str]:
        """What every key-use audit entry records of the authority for the use: the TSA
        token that proved the time, and the officers whose shares unlocked the key."""
        return {"tsa_token_sha256": self.proof.token_sha256, "officers": ",".join(self.officers)}

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        """KeyTransport: recover one content-encryption key on the token."""
        return self._key.decrypt_key(encrypted_key, oaep_hash)


def journal_key_use(
    ctx: ServiceContext, access: TenderKeyAccess, bid_id: str, operation: KeyOperation
) -> None:
    """Commit one use of the tender key (a key-use row and a ``key.used`` audit entry naming
    the proof and officers behind ``access``) before the key is used."""
    with unit_of_work(ctx.engine) as session:
        now = ctx.clock.now()
        Repository(session).add_key_use(
            KeyUse(tender_id=access.tender_id, bid_id=bid_id, operation=operation, at=now)
        )
        ctx.audit.append(
            session,
            at=now,
            event="key.used",
            tender_id=access.tender_id,
            bid_id=bid_id,
            fields={"operation": operation.value, **access.evidence},
        )
