"""Immutable results the services hand to adapters (gRPC, CLI); no ORM objects escape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sealed_bid.domain.custody import DEFAULT_RESPONSE_WINDOW_SECONDS, SCHEDULED, UnlockPolicy
from sealed_bid.domain.receipt import ReceiptContent
from sealed_bid.domain.tender import BidAlgorithms


@dataclass(frozen=True)
class TenderView:
    tender_id: str
    title: str
    created_at: datetime
    deadline: datetime
    opening_time: datetime
    tender_certificate_der: bytes
    tender_ca_certificate_der: bytes
    algorithms: BidAlgorithms
    max_envelope_bytes: int
    accepted_ca_ids: tuple[str, ...]
    state: str
    bid_count_visible: bool
    revocation_policy: str
    certificate_policies: tuple[str, ...]
    extended_key_usages: tuple[str, ...]
    unlock_policy: UnlockPolicy = SCHEDULED
    response_window_seconds: int = DEFAULT_RESPONSE_WINDOW_SECONDS


@dataclass(frozen=True)
class ReceiptView:
    receipt_der: bytes
    content: ReceiptContent
    duplicate: bool = False


@dataclass(frozen=True)
class RecordView:
    tender_id: str
    record_json: str
    record_sha256: str
    record_pdf: bytes = b""
