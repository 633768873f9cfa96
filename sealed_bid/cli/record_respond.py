"""``sealed-bid record respond``: a bidder confirms, or objects to, a tender's opening
record within the tender's response window. The statement names the record by its
SHA-256 and is signed on this machine with the key the bidder bid with; the key never
leaves it, and nothing but the signed statement is sent."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from sealed_bid.cli import common
from sealed_bid.client import SealedBidClient
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.opening_response import (
    VERDICTS,
    ResponseStatement,
    Verdict,
    describe_response,
)
from sealed_bid.v1 import sealed_bid_pb2 as pb


def respond(
    client: SealedBidClient,
    tender_id: str,
    verdict: Verdict,
    text: str,
    signer: Signer,
    now: datetime,
    record_sha256: str | None = None,
) -> pb.OpeningResponse:
    """Sign and send a response to the tender's record: the one fetched now, unless
    ``record_sha256`` names the one reviewed (the service refuses it if it differs)."""
    digest = record_sha256 or client.get_record(tender_id).record_sha256
    statement = ResponseStatement(TenderId(tender_id), digest, verdict, text).to_bytes()
    return client.respond_to_record(sign_attached(signer, statement, now))


def print_responses(record: pb.OpeningRecord) -> None:
    """What travels beside a record: the bidders' responses, the window, the key."""
    if record.HasField("responses_close_at"):
        print(f"responses until {record.responses_close_at.ToJsonString()}:")
    for r in record.responses:
        line = describe_response(r.bidder, r.bid_id, r.verdict, r.text)
        print(f"  {r.received_at.ToJsonString()}  {line}  ({r.bid_id})")
    if record.HasField("key_destroyed_at"):
        print(f"tender key destroyed at {record.key_destroyed_at.ToJsonString()}")


def cmd_record_respond(args: argparse.Namespace) -> int:
    signer = common.load_signer(args.key, args.cert)
    with common.connect(args, operator=False) as client:
        response = respond(
            client,
            args.tender,
            args.verdict,
            args.text,
            signer,
            datetime.now(UTC),
            args.record_sha256,
        )
    print(
        f"{response.verdict} recorded as {response.response_id} (bid {response.bid_id},"
        f" {response.bidder}) at {response.received_at.ToJsonString()}"
    )
    return 0


def add_respond_command(record: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = record.add_parser(
        "respond", help="confirm or object to a tender's opening record (bidder, signed)"
    )
    common.add_connection_args(p, operator=False)
    p.add_argument("--tender", required=True)
    p.add_argument("--verdict", required=True, choices=VERDICTS)
    p.add_argument("--text", default="", help="your words; an objection must say why")
    p.add_argument(
        "--record-sha256", help="the record you reviewed (default: the record as fetched now)"
    )
    p.add_argument("--key", type=Path, required=True, help="the key you bid with (PEM)")
    p.add_argument("--cert", type=Path, required=True, help="the certificate you bid with")
    p.set_defaults(func=cmd_record_respond)
