"""Warnings for bids whose signer's certificate (or a CA certificate above it) expires
before the tender's opening, so the bidder can be told to re-sign in time.

The question is answered once, at submission (``expiry_before_opening``), and only its
answer is kept in clear (``Bid.expires_before_opening``): the certificates themselves are
sealed until the opening, and a notAfter date would fingerprint the certificate (ADR
0016). The bid itself stays valid: its signer was validated at submission and the
evidence is sealed with it (``service.revalidation``). The warning names tender, bid and
the opening time only, never the bidder nor a certificate date. Reads the database only;
never the blob store, the token or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import Engine

from sealed_bid.crypto.signed_data import SignatureFacts
from sealed_bid.storage.blobstore import BlobStore
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import CertificateExpiry, TenderState
from sealed_bid.storage.repository import Repository


@dataclass(frozen=True)
class ExpiryWarning:
    tender_id: str
    bid_id: str
    opening_time: datetime
    end_entity: bool
    """True: the signer's own certificate; False: a CA certificate in its signature."""

    def line(self) -> str:
        which = "signer certificate" if self.end_entity else "a CA certificate of the signer"
        return (
            f"tender {self.tender_id} bid {self.bid_id}: {which} expires before the opening"
            f" {self.opening_time.isoformat()}; the bid stays valid (validated at submission,"
            " evidence sealed with it); the bidder may re-sign before the deadline"
        )


def expiry_before_opening(facts: SignatureFacts, opening_time: datetime) -> CertificateExpiry:
    """At submission: does a certificate the outer signature carries (the signer's or a
    CA's) expire before the opening, and which expires first."""
    signer = x509.load_der_x509_certificate(facts.signer_certificate_der)
    others = [x509.load_der_x509_certificate(d) for d in facts.certificates_der]
    soonest = min([signer, *others], key=lambda c: c.not_valid_after_utc)
    if soonest.not_valid_after_utc >= opening_time:
        return CertificateExpiry.NONE
    return CertificateExpiry.SIGNER if soonest == signer else CertificateExpiry.CA


def expiring_signers(engine: Engine, blobs: BlobStore | None = None) -> list[ExpiryWarning]:
    """One warning per current bid of every tender still accepting bids whose signature
    carries a certificate that expires before that tender's opening time. ``blobs`` is
    not read (the answer is in the bid row); it stays for the callers that pass it."""
    del blobs
    warnings: list[ExpiryWarning] = []
    with unit_of_work(engine, read_only=True) as session:
        repo = Repository(session)
        for tender in repo.list_tenders():
            if tender.state != TenderState.ACCEPTING:
                continue
            for bid in repo.current_bids(tender.id):
                if bid.expires_before_opening == CertificateExpiry.NONE:
                    continue
                warnings.append(
                    ExpiryWarning(
                        tender_id=tender.id,
                        bid_id=bid.id,
                        opening_time=tender.opening_time,
                        end_entity=bid.expires_before_opening == CertificateExpiry.SIGNER,
                    )
                )
    return warnings
