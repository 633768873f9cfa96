"""What every service uses, built once at start-up: the clock, the token, the store,
the trust store and the platform's token-held signers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine

from ca_bridge.identity import BidderIdentity
from ca_bridge.revocation import RevocationSource
from ca_bridge.trust_snapshots import TrustSnapshots
from sealed_bid.config import Settings
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.clock import Clock
from sealed_bid.domain.ids import BidderTag, TenderId
from sealed_bid.hsm.token import Token
from sealed_bid.storage.audit_log import AuditLog
from sealed_bid.storage.blobstore import BlobStore

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

    def bidder_tag(self, tender_id: TenderId, identity: BidderIdentity) -> BidderTag:
        """A keyed hash of who the bidder is within one tender, computed on the token, so
        the database can find a bidder's latest bid without holding its identity."""
        message = b"sealed-bid/bidder-tag/v1\0" + tender_id.encode() + b"\0" + identity.identity_key
        return BidderTag(self.token.hmac(BIDDER_TAG_KEY, message).hex())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
