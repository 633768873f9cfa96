"""The shares officers have presented for quorum tenders, held in this process's memory
only: never written to the database, a file or a log. A share is accepted only from a
named officer (by the SHA-256 of the mTLS client certificate), only from the opening time
on, only if it matches the commitment stored at creation, and once per person.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.shares import ShareRecord
from sealed_bid.errors import (
    NotYetOpen,
    OfficerNotNamed,
    ShareAlreadyPresented,
    ShareInvalid,
)


@dataclass(frozen=True)
class PresentedShare:
    officer_index: int
    subject: str
    certificate_sha256: str
    record: ShareRecord


@dataclass(frozen=True)
class OfficerRow:
    """What the desk needs of a stored officer row."""

    share_index: int
    subject: str
    certificate_sha256: str
    commitment: str


class ShareDesk:
    """The shares presented so far, per tender, in this process's memory only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shares: dict[str, dict[int, PresentedShare]] = {}

    def present(
        self,
        *,
        tender_id: TenderId,
        opening_time: datetime,
        now: datetime,
        threshold: int,
        officers: list[OfficerRow],
        caller_certificate_sha256: str,
        share: bytes,
    ) -> int:
        """Accept one officer's share; return how many distinct officers have presented."""
        officer = next(
            (o for o in officers if o.certificate_sha256 == caller_certificate_sha256), None
        )
        if officer is None:
            raise OfficerNotNamed(
                f"the client certificate is not one of tender {tender_id}'s opening officers"
            )
        if now < opening_time:
            raise NotYetOpen(
                f"shares are accepted from the opening time {opening_time.isoformat()} on",
                tender_id=tender_id,
            )
        record = ShareRecord.from_bytes(share)
        if record.tender_id != tender_id:
            raise ShareInvalid("this share belongs to another tender")
        if record.index != officer.share_index:
            raise ShareInvalid("this is not the share that was issued to this officer")
        record.check_commitment(officer.commitment)
        if record.threshold != threshold or record.total != len(officers):
            raise ShareInvalid("the share's threshold or officer count is not the tender's")
        with self._lock:
            held = self._shares.setdefault(tender_id, {})
            same_person = any(
                p.subject.casefold() == officer.subject.casefold() for p in held.values()
            )
            if officer.share_index in held or same_person:
                raise ShareAlreadyPresented(
                    f"officer {officer.subject} has already presented a share"
                )
            held[officer.share_index] = PresentedShare(
                officer.share_index, officer.subject, officer.certificate_sha256, record
            )
            return len(held)

    def presented(self, tender_id: str) -> list[PresentedShare]:
        with self._lock:
            return list(self._shares.get(tender_id, {}).values())

    def forget(self, tender_id: str) -> None:
        with self._lock:
            self._shares.pop(tender_id, None)
