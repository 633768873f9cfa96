"""``sealed-bid bid release-key``: at a remote opening, a bidder whose envelope was also
sealed to its own certificate (``bid seal --also-to``) recovers the content key on this
machine with its own key, checks that the key opens the envelope, and releases it to the
service in a statement signed with the certificate it bid with.

The private key never leaves this machine; only the signed statement is sent. The content
key is never printed, logged or written to a file. The tender key remains the fallback:
a bidder who cannot release (lost key, no network) loses nothing.
"""

from __future__ import annotations

import argparse
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sealed_bid.cli import common
from sealed_bid.client import SealedBidClient
from sealed_bid.crypto.released_key import recover_own_content_key
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.ids import BidId, EnvelopeDigest, parse_tender_id
from sealed_bid.domain.key_release import KeyRelease
from sealed_bid.v1 import sealed_bid_pb2 as pb


def release_key(
    client: SealedBidClient,
    tender_id: str,
    bid_id: str,
    envelope: Path,
    own_key: rsa.RSAPrivateKey,
    signer: Signer,
    now: datetime,
) -> pb.ReleaseContentKeyResponse:
    """Recover the content key of ``envelope`` from its RecipientInfo for the signer's
    certificate, and release it for bid ``bid_id`` of ``tender_id``."""
    try:
        tender = parse_tender_id(tender_id)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    with envelope.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    content_key = recover_own_content_key(envelope, signer.certificate_der, own_key)
    statement = KeyRelease(tender, BidId(bid_id), EnvelopeDigest(digest), content_key)
    return client.release_content_key(sign_attached(signer, statement.to_bytes(), now))


def cmd_release_key(args: argparse.Namespace) -> int:
    signer = common.load_signer(args.key, args.cert)
    own_key = load_pem_private_key(args.key.read_bytes(), password=None)
    if not isinstance(own_key, rsa.RSAPrivateKey):
        raise SystemExit(
            f"{args.key}: only an RSA key can recover a content key here (key agreement to"
            " an EC certificate is not implemented); the tender key will open your bid"
        )
    with common.connect(args, operator=False) as client:
        response = release_key(
            client, args.tender, args.bid, args.envelope, own_key, signer, datetime.now(UTC)
        )
    print(
        f"content key of bid {response.bid_id} released for the opening of tender"
        f" {args.tender}; if it does not open the envelope, the tender key will"
    )
    return 0


def add_release_key_command(bid: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = bid.add_parser(
        "release-key",
        help="at the opening: recover your bid's content key with your own key and release it",
    )
    common.add_connection_args(p, operator=False)
    p.add_argument("--tender", required=True)
    p.add_argument("--bid", required=True, help="the bid id, as on your receipt")
    p.add_argument("--envelope", type=Path, required=True, help="your bid.p7m")
    p.add_argument("--key", type=Path, required=True, help="the key of --cert (PEM, RSA)")
    p.add_argument(
        "--cert",
        type=Path,
        required=True,
        help="the certificate you bid with; the envelope must also be sealed to it",
    )
    p.set_defaults(func=cmd_release_key)
