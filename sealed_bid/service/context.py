"""What every service uses, built once at start-up: the clock, the token, the store,
the trust store and the platform's token-held signers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ca_bridge.identity import BidderIdentity
from ca_bridge.revocation import RevocationSource
from ca_bridge.trust_snapshots import TrustSnapshots
from sealed_bid.config import Settings
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.clock import Clock
from sealed_bid.domain.ids import BidderTag, TenderId
from sealed_bid.hsm.token import Token
from sealed_bid.service.opening_events import OpeningEvents
from sealed_bid.service.released_keys import ReleasedKeys
from sealed_bid.service.share_desk import ShareDesk
from sealed_bid.storage.audit_log import AuditLog
from sealed_bid.storage.blobstore import BlobStore

if TYPE_CHECKING:
    from sealed_bid.hsm.quorum_token import QuorumTokens
    from sealed_bid.timestamping.client import TimestampClient

BIDDER_TAG_KEY = "platform-bidder-tag"


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    clock: Clock
    token: Token
    engine: Engine
    blobs: BlobStore
    audit: AuditLog
    trust: TrustSnapshots
    """The current trust store; changes (CLI, sync job) show within seconds."""
    oaep_hashes: tuple[str, ...]
    """OAEP hashes the token can really open (probed at start-up)."""
    receipt_signer: Signer
    tender_ca_signer: Signer
    revocation: RevocationSource | None = None
    """Fetches and caches CRLs / OCSP for signer validation; None: trust-store CRLs only."""
    timestamps: TimestampClient | None = None
    """The time-stamping authority; None: nothing can be opened (the time is unproven)."""
    quorum_tokens: QuorumTokens | None = None
    """Creates and opens the per-tender tokens of quorum tenders; None: no quorum tenders."""
    shares: ShareDesk = field(default_factory=ShareDesk)
    """Officers' shares presented at openings, in memory only."""
    events: OpeningEvents = field(default_factory=OpeningEvents)
    """What happens at openings, for watchers (the console), in memory only."""
    released_keys: ReleasedKeys = field(default_factory=ReleasedKeys)
    """Content keys bidders released for their own bids, in memory only."""

    def bidder_tag(self, tender_id: TenderId, identity: BidderIdentity) -> BidderTag:
        """A keyed hash of who the bidder is within one tender, computed on the token, so
        the database can find a bidder's latest bid without holding its identity."""
        message = b"sealed-bid/bidder-tag/v1\0" + tender_id.encode() + b"\0" + identity.identity_key
        return BidderTag(self.token.hmac(BIDDER_TAG_KEY, message).hex())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
