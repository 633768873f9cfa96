"""``sealed-bid officer``: an opening officer's commands for quorum tenders, run on the
officer's own machine with the officer's own key. The share is decrypted here, locally;
the service only ever sees the decrypted share of an officer who chose to present it,
over mutual TLS with that officer's certificate."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sealed_bid.cli import common
from sealed_bid.client import SealedBidClient
from sealed_bid.crypto.share_envelope import open_share
from sealed_bid.devpki import load_dev_pki


def _officer_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """The officer's certificate and key: explicit, or dev officer ``--dev-officer``."""
    if args.cert and args.key:
        return args.cert, args.key
    if args.dev_officer:
        settings = common.settings_from(args)
        files = load_dev_pki(settings.pki_path).officers[args.dev_officer]
        return files.cert, files.key
    raise SystemExit("officer commands need --cert and --key (or --dev-officer NAME)")


def _connect(args: argparse.Namespace) -> SealedBidClient:
    cert, key = _officer_files(args)
    args.cert, args.key = cert, key
    return common.connect(args, operator=True)


def cmd_fetch_share(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        share = client.get_officer_share(args.tender)
    args.out.write_bytes(share.sealed_share)
    print(
        f"share {share.index} of {share.total} (threshold {share.threshold}) for tender"
        f" {share.tender_id} written to {args.out}, encrypted to your certificate"
    )
    return 0


def cmd_present_share(args: argparse.Namespace) -> int:
    _, key_path = _officer_files(args)
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit("an officer key must be an RSA key")
    with _connect(args) as client:
        sealed = (
            args.share_file.read_bytes()
            if args.share_file
            else client.get_officer_share(args.tender).sealed_share
        )
        share = open_share(sealed, key)
        response = client.present_share(args.tender, share)
    print(f"share presented: {response.presented} of {response.threshold} needed")
    return 0


def add_officer_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    officer = sub.add_parser(
        "officer", help="opening officers: fetch and present quorum shares"
    ).add_subparsers(dest="officer_command", required=True)
    for name, func, text in (
        ("fetch-share", cmd_fetch_share, "save your encrypted share of a quorum tender"),
        ("present-share", cmd_present_share, "decrypt your share locally and present it"),
    ):
        p = officer.add_parser(name, help=text)
        common.add_connection_args(p, operator=True)
        p.add_argument("--dev-officer", help="use this dev PKI officer (officer-1 ...)")
        p.add_argument("--tender", required=True)
        if name == "fetch-share":
            p.add_argument("--out", type=Path, required=True)
        else:
            p.add_argument("--share-file", type=Path, help="the encrypted share (default: fetch)")
        p.set_defaults(func=func)
