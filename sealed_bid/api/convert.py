"""Translation between service views and protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from sealed_bid.domain.opening_response import ReceivedResponse
from sealed_bid.service.views import ReceiptView, RecordView, TenderView
from sealed_bid.v1 import sealed_bid_pb2 as pb

if TYPE_CHECKING:
    from sealed_bid.service.responses import RecordExtras

_STATES = {"accepting": pb.TENDER_STATE_ACCEPTING, "opened": pb.TENDER_STATE_OPENED}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def tender_message(view: TenderView) -> pb.Tender:
    algs = view.algorithms
    return pb.Tender(
        tender_id=view.tender_id,
        title=view.title,
        created_at=timestamp(view.created_at),
        deadline=timestamp(view.deadline),
        opening_time=timestamp(view.opening_time),
        tender_certificate=view.tender_certificate_der,
        tender_ca_certificate=view.tender_ca_certificate_der,
        algorithms=pb.BidAlgorithms(
            envelope_content_types=list(algs.envelope_content_types),
            content_encryption=list(algs.content_encryption),
            key_transport=algs.key_transport,
            oaep_hashes=list(algs.oaep_hashes),
            digest=algs.digest,
            signature_algorithms=list(algs.signature_algorithms),
        ),
        max_envelope_bytes=view.max_envelope_bytes,
        accepted_ca_ids=list(view.accepted_ca_ids),
        state=_STATES.get(view.state, pb.TENDER_STATE_UNSPECIFIED),
        bid_count_visible=view.bid_count_visible,
        revocation_policy=view.revocation_policy,
        certificate_policies=list(view.certificate_policies),
        extended_key_usages=list(view.extended_key_usages),
        response_window_seconds=view.response_window_seconds,
        unlock_policy=pb.UnlockPolicy(
            kind=view.unlock_policy.kind,
            threshold=view.unlock_policy.threshold,
            officers=[
                pb.Officer(
                    index=o.index, subject=o.subject, certificate_sha256=o.certificate_sha256
                )
                for o in view.unlock_policy.officers
            ],
        ),
    )


def receipt_message(view: ReceiptView) -> pb.Receipt:
    c = view.content
    return pb.Receipt(
        signed_receipt=view.receipt_der,
        content=pb.ReceiptContent(
            kind=c.kind,
            tender_id=c.tender_id,
            bid_id=c.bid_id,
            envelope_sha256=c.envelope_sha256,
            size=c.size,
            received_at=timestamp(c.received_at),
            log_sequence=c.log_sequence,
        ),
    )


def record_message(view: RecordView, extras: RecordExtras | None = None) -> pb.OpeningRecord:
    """The record as signed, and what travels beside it (responses, window, key)."""
    message = pb.OpeningRecord(
        tender_id=view.tender_id,
        record_json=view.record_json,
        record_sha256=view.record_sha256,
        record_pdf=view.record_pdf,
    )
    if extras is not None:
        message.responses.extend(response_message(r) for r in extras.responses)
        if extras.responses_close_at is not None:
            message.responses_close_at.CopyFrom(timestamp(extras.responses_close_at))
        if extras.key_destroyed_at is not None:
            message.key_destroyed_at.CopyFrom(timestamp(extras.key_destroyed_at))
    return message


def response_message(response: ReceivedResponse) -> pb.OpeningResponse:
    return pb.OpeningResponse(
        response_id=response.response_id,
        tender_id=response.tender_id,
        bid_id=response.bid_id,
        verdict=response.verdict,
        text=response.text,
        bidder=response.bidder,
        received_at=timestamp(response.received_at),
        signed_statement=response.signed_statement,
    )
