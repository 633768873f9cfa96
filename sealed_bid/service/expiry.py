"""Warnings for bids whose signer's certificate (or a CA certificate above it) expires
before the tender's opening, so the bidder can be told to re-sign in time.

The bid itself stays valid: its signer was validated at submission and the evidence is
stored with it (``service.revalidation``). The warning names tender, bid and dates only,
never the bidder. Reads the database and blob store; never the token or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import Engine

from sealed_bid.crypto.signed_data import verify_detached
from sealed_bid.storage.blobstore import BlobStore
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import TenderState
from sealed_bid.storage.repository import Repository


@dataclass(frozen=True)
class ExpiryWarning:
    tender_id: str
    bid_id: str
    expires_at: datetime
    opening_time: datetime
    end_entity: bool
    """True: the signer's own certificate; False: a CA certificate in its signature."""

    def line(self) -> str:
        which = "signer certificate" if self.end_entity else "a CA certificate of the signer"
        return (
            f"tender {self.tender_id} bid {self.bid_id}: {which} expires"
            f" {self.expires_at.isoformat()}, before the opening {self.opening_time.isoformat()};"
            " the bid stays valid (validated at submission, evidence stored); the bidder"
            " may re-sign before the deadline"
        )


def expiring_signers(engine: Engine, blobs: BlobStore) -> list[ExpiryWarning]:
    """One warning per current bid of every tender still accepting bids whose signature
    carries a certificate that expires before that tender's opening time."""
    found: list[tuple[str, str, str, str, datetime]] = []
    with unit_of_work(engine, read_only=True) as session:
        repo = Repository(session)
        for tender in repo.list_tenders():
            if tender.state != TenderState.ACCEPTING:
                continue
            for bid in repo.current_bids(tender.id):
                found.append(
                    (
                        tender.id,
                        bid.id,
                        bid.outer_signature_blob,
                        bid.envelope_sha256,
                        tender.opening_time,
                    )
                )
    warnings: list[ExpiryWarning] = []
    for tender_id, bid_id, signature_blob, envelope_sha256, opening in found:
        facts = verify_detached(
            blobs.path(signature_blob).read_bytes(), bytes.fromhex(envelope_sha256)
        )
        signer = x509.load_der_x509_certificate(facts.signer_certificate_der)
        others = [x509.load_der_x509_certificate(d) for d in facts.certificates_der]
        soonest = min([signer, *others], key=lambda c: c.not_valid_after_utc)
        if soonest.not_valid_after_utc < opening:
            warnings.append(
                ExpiryWarning(
                    tender_id=tender_id,
                    bid_id=bid_id,
                    expires_at=soonest.not_valid_after_utc,
                    opening_time=opening,
                    end_entity=soonest == signer,
                )
            )
    return warnings
