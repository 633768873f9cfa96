"""Re-checking a bid's signer validation later, offline, from what was stored with it:
the outer signature (certificate and chain), the CRL / OCSP evidence used at submission,
and the policy. A certificate revoked after an honest submission does not void the bid;
one revoked before it would have been refused then and is refused now.

That material is sealed to the tender key until the opening, which stores the clear copy
of each bid it opens (ADR 0016); before that, and for bids it did not open, this refuses
with BID_SEALED. Reads the database and the blob store only; never the token, never the
network, never a sealed blob.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from ca_bridge.trust_store import TrustStore
from ca_bridge.validation import SignerPolicy, SignerValidation, revalidate_offline
from sealed_bid.crypto.signed_data import verify_detached
from sealed_bid.domain.ids import BidId
from sealed_bid.errors import BidNotFound, BidSealed
from sealed_bid.storage.blobstore import BlobStore
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import BidStatus, TenderState
from sealed_bid.storage.repository import Repository


@dataclass(frozen=True)
class Recheck:
    stored: dict[str, Any]
    """The validation record stored with the bid (no names)."""
    result: SignerValidation


def recheck_bid(engine: Engine, blobs: BlobStore, trust: TrustStore, bid_id: str) -> Recheck:
    """Raise the ``CaBridgeError`` the stored evidence now leads to, or describe success."""
    with unit_of_work(engine, read_only=True) as session:
        repo = Repository(session)
        bid = repo.get_bid(BidId(bid_id))
        tender = repo.get_tender(bid.tender_id)
        if bid.outer_signature_blob is None or bid.validation_json is None:
            raise _sealed(bid_id, tender.state, bid.status)
        accepted = list(tender.accepted_ca_ids)
        signature = blobs.path(bid.outer_signature_blob).read_bytes()
        digest = bytes.fromhex(bid.envelope_sha256)
        raw = bid.validation_json
    if not raw:
        raise BidNotFound(f"bid {bid_id!r} has no stored validation record")
    stored = json.loads(raw)
    facts = verify_detached(signature, digest)
    policy = SignerPolicy(
        key_usage=frozenset(stored["policy"]["key_usage"]),
        revocation=stored["policy"]["revocation"],
        certificate_policies=frozenset(stored["policy"].get("certificate_policies", ())) or None,
        extended_key_usage=frozenset(stored["policy"].get("extended_key_usage", ())) or None,
    )
    evidence = [blobs.path(item["blob"]).read_bytes() for item in stored["evidence"]]
    result = revalidate_offline(
        facts.signer_certificate_der,
        facts.certificates_der,
        datetime.fromisoformat(stored["validated_at"]),
        trust,
        accepted,
        policy,
        evidence,
    )
    return Recheck(stored=stored, result=result)


def _sealed(bid_id: str, tender_state: TenderState, status: BidStatus) -> BidSealed:
    if tender_state != TenderState.OPENED:
        return BidSealed(
            f"the signer validation of bid {bid_id} is sealed to the tender key until the opening",
            bid_id=bid_id,
        )
    if status != BidStatus.CURRENT:
        why = f"it was {status.value} before the deadline"
    else:
        why = "its sealed signer identity did not unseal (see the opening record)"
    return BidSealed(
        f"bid {bid_id} was not opened ({why}); its signer validation stays sealed to the"
        " tender key",
        bid_id=bid_id,
    )
