"""``sealed-bid``: serve, operate, bid and verify from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealed_bid.cli import ca, common, console_cmd, key_release, officer, record_respond
from sealed_bid.client import ServiceError
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import seal_bid
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.devpki import make_dev_pki
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.clock import SystemClock
from sealed_bid.domain.ids import BidId, TenderId
from sealed_bid.domain.withdrawal import WithdrawalStatement
from sealed_bid.errors import SealedBidError
from sealed_bid.service.receipts import verify_receipt

# The commands that run the service (init, serve, demo) import sealed_bid.app only when
# they run: loading it (PKCS#11, SQLAlchemy, the servicers) adds a second to every other
# command. Hence their "noqa: PLC0415".


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give times with a zone, e.g. 2026-12-01T09:00:00+08:00")
    return value


def cmd_init(args: argparse.Namespace) -> int:
    from sealed_bid.app import init_local  # noqa: PLC0415

    settings = common.settings_from(args)
    pki = init_local(settings, datetime.now(UTC))
    print(f"state directory: {settings.state_dir}")
    print(f"dev PKI:         {pki.directory} (development only)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from sealed_bid.app import build_server, open_application  # noqa: PLC0415

    settings = common.settings_from(args)
    # Service events are one line each: "event key=value ..." with ids, never secrets.
    logging.getLogger().setLevel(settings.log_level.upper())
    tsa = None
    if args.dev_tsa:
        from sealed_bid.timestamping.dev_tsa import (  # noqa: PLC0415
            DevTsaServer,
            load_dev_tsa,
            load_dev_tsa_signer,
        )

        if settings.tsa_url:
            raise SystemExit("--dev-tsa and tsa_url are exclusive; drop one")
        tsa = DevTsaServer(load_dev_tsa_signer(load_dev_tsa(settings.pki_path / "tsa"))).start()
        settings = dataclasses.replace(settings, tsa_url=tsa.url)
        print(f"dev TSA (development only): {tsa.url}", flush=True)
    app = open_application(settings, SystemClock())
    server = build_server(app)
    server.start()
    print(
        f"serving: public 127.0.0.1:{server.public_port}, operator {server.operator_port},"
        f" authority {server.authority_port or '-'}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    app.close()
    if tsa is not None:
        tsa.stop()
    return 0


def cmd_tender_create(args: argparse.Namespace) -> int:
    with common.connect(args, operator=True) as client:
        tender = client.create_tender(
            args.id,
            args.title,
            args.deadline,
            args.opening_time,
            args.ca or ["dev-bidder-ca"],
            args.max_bytes,
            args.count_visible,
            args.revocation,
            tuple(args.policy or ()),
            tuple(args.eku or ()),
            args.quorum or 0,
            tuple(common.pem_or_der_certificate(p) for p in args.officer or ()),
        )
    print(f"created {tender.tender_id}; opens {tender.opening_time.ToJsonString()}")
    return 0


def cmd_tender_reschedule(args: argparse.Namespace) -> int:
    with common.connect(args, operator=True) as client:
        tender = client.reschedule_tender(args.id, args.deadline, args.opening_time, args.reason)
    print(
        f"rescheduled {tender.tender_id}: deadline {tender.deadline.ToJsonString()},"
        f" opens {tender.opening_time.ToJsonString()}"
    )
    return 0


def cmd_tender_destroy_key(args: argparse.Namespace) -> int:
    with common.connect(args, operator=True) as client:
        record = client.destroy_tender_key(args.id)
    print(
        f"tender key of {record.tender_id} destroyed at {record.key_destroyed_at.ToJsonString()};"
        f" record sha256 {record.record_sha256}"
    )
    return 0


def cmd_tender_show(args: argparse.Namespace) -> int:
    with common.connect(args, operator=False) as client:
        tender = client.get_tender(args.id)
    if args.cert_out:
        cert = x509.load_der_x509_certificate(tender.tender_certificate)
        args.cert_out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    print(
        json.dumps(
            {
                "tender_id": tender.tender_id,
                "title": tender.title,
                "deadline": tender.deadline.ToJsonString(),
                "opening_time": tender.opening_time.ToJsonString(),
                "max_envelope_bytes": tender.max_envelope_bytes,
                "oaep_hashes": list(tender.algorithms.oaep_hashes),
                "content_encryption": list(tender.algorithms.content_encryption),
                "accepted_ca_ids": list(tender.accepted_ca_ids),
                "unlock_policy": {
                    "kind": tender.unlock_policy.kind or "scheduled",
                    "threshold": tender.unlock_policy.threshold,
                    "officers": [o.subject for o in tender.unlock_policy.officers],
                },
            },
            indent=2,
        )
    )
    return 0


def cmd_bid_package(args: argparse.Namespace) -> int:
    form = BidForm.parse(args.form.read_bytes())
    documents: dict[str, Path] = {}
    for path in args.doc or []:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file")
        if path.name in documents:
            raise SystemExit(f"two documents are named {path.name!r}; rename one")
        documents[path.name] = path
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    try:
        with partial.open("wb") as dst:
            build_package(form, documents, dst)
        partial.replace(args.out)
    finally:
        partial.unlink(missing_ok=True)
    with args.out.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    print(f"package:   {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    print(f"bid form:  {form.bidder_name}, {form.price} {form.currency}, tender {form.tender_id}")
    print(f"documents: {', '.join(documents) or '(none)'}")
    return 0


def cmd_bid_seal(args: argparse.Namespace) -> int:
    signer = common.load_signer(args.key, args.cert)
    tender_cert = common.pem_or_der_certificate(args.tender_cert)
    args.out.mkdir(parents=True, exist_ok=True)
    also_to = tuple(common.pem_or_der_certificate(p) for p in args.also_to or ())
    sealed = seal_bid(
        args.package, signer, tender_cert, args.out, oaep_hash=args.oaep_hash, also_to=also_to
    )
    sig_path = args.out / "bid.p7s"
    sig_path.write_bytes(sealed.outer_signature_der)
    print(f"envelope:  {sealed.envelope_path} ({sealed.size} bytes, sha256 {sealed.sha256})")
    print(f"signature: {sig_path}")
    return 0


def cmd_bid_submit(args: argparse.Namespace) -> int:
    with common.connect(args, operator=False) as client:
        result = client.submit_bid(args.tender, args.envelope, args.signature.read_bytes())
    args.receipt_out.write_bytes(result.receipt.signed_receipt)
    c = result.receipt.content
    note = " (already accepted: same receipt)" if result.duplicate else ""
    print(f"accepted bid {c.bid_id} seq {c.log_sequence}{note}; receipt: {args.receipt_out}")
    return 0


def cmd_bid_withdraw(args: argparse.Namespace) -> int:
    signer = common.load_signer(args.key, args.cert)
    statement = WithdrawalStatement(TenderId(args.tender), BidId(args.bid)).to_bytes()
    signed = sign_attached(signer, statement, datetime.now(UTC))
    with common.connect(args, operator=False) as client:
        receipt = client.withdraw_bid(signed)
    if args.receipt_out:
        args.receipt_out.write_bytes(receipt.signed_receipt)
    print(f"withdrawn {receipt.content.bid_id} seq {receipt.content.log_sequence}")
    return 0


def cmd_receipt_verify(args: argparse.Namespace) -> int:
    root = common.pem_or_der_certificate(args.platform_root)
    tsa_roots = [common.pem_or_der_certificate(p) for p in args.tsa_root or ()]
    verified = verify_receipt(args.receipt.read_bytes(), root, tsa_roots)
    print(json.dumps(verified.content.to_dict(), indent=2))
    print(f"valid receipt signed by {verified.signer_subject}")
    if verified.timestamped_at is not None:
        print(f"time-stamped by the TSA at {verified.timestamped_at.isoformat()}")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    with common.connect(args, operator=True) as client:
        record = client.open_tender(args.tender)
    common.print_record(record.record_json)
    print(f"record sha256 {record.record_sha256}")
    return 0


def cmd_record_show(args: argparse.Namespace) -> int:
    with common.connect(args, operator=False) as client:
        record = client.get_record(args.tender)
    if args.json:
        print(record.record_json)
    else:
        common.print_record(record.record_json)
        record_respond.print_responses(record)
    return 0


def cmd_dev_pki(args: argparse.Namespace) -> int:
    pki = make_dev_pki(args.dir, datetime.now(UTC))
    print(f"development PKI written to {pki.directory}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sealed_bid.cli.demo import run_demo  # noqa: PLC0415

    return run_demo(args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealed-bid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="set up the local token, platform keys and dev PKI")
    common.add_settings_args(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="run the gRPC service")
    common.add_settings_args(p)
    p.add_argument(
        "--dev-tsa",
        action="store_true",
        help="also serve the dev PKI's time-stamping authority on 127.0.0.1 and use it"
        " (development only; production sets tsa_url)",
    )
    p.set_defaults(func=cmd_serve)

    tender = sub.add_parser("tender", help="create or show tenders").add_subparsers(
        dest="tender_command", required=True
    )
    p = tender.add_parser("create", help="create a tender (operator)")
    common.add_connection_args(p, operator=True)
    p.add_argument("--id", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--deadline", required=True, type=_time)
    p.add_argument("--opening-time", required=True, type=_time)
    p.add_argument("--ca", action="append", help="accepted bidder CA id (repeatable)")
    p.add_argument("--max-bytes", type=int, default=0)
    p.add_argument("--count-visible", action="store_true")
    p.add_argument(
        "--revocation",
        choices=("require", "soft-fail"),
        default="require",
        help="no fresh revocation info: refuse the bid (require) or accept with a warning",
    )
    p.add_argument(
        "--policy",
        action="append",
        help="certificate policy OID a bidder's certificate must be valid for (repeatable)",
    )
    p.add_argument(
        "--eku",
        action="append",
        help="extended key usage OID a bidder's certificate must carry (repeatable)",
    )
    p.add_argument(
        "--quorum", type=int, help="K: officers needed to open (quorum custody; with --officer)"
    )
    p.add_argument(
        "--officer",
        action="append",
        type=Path,
        help="an opening officer's certificate, PEM or DER (repeatable, N of them)",
    )
    p.set_defaults(func=cmd_tender_create)
    p = tender.add_parser("reschedule", help="move a tender's deadline or opening (operator)")
    common.add_connection_args(p, operator=True)
    p.add_argument("--id", required=True)
    p.add_argument("--deadline", required=True, type=_time)
    p.add_argument("--opening-time", required=True, type=_time)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_tender_reschedule)
    p = tender.add_parser(
        "destroy-key",
        help="destroy an opened tender's key once the response window has closed (operator)",
    )
    common.add_connection_args(p, operator=True)
    p.add_argument("id")
    p.set_defaults(func=cmd_tender_destroy_key)
    p = tender.add_parser("show", help="show a tender and save its certificate")
    common.add_connection_args(p, operator=False)
    p.add_argument("id")
    p.add_argument("--cert-out", type=Path, help="write the tender certificate (PEM) here")
    p.set_defaults(func=cmd_tender_show)

    bid = sub.add_parser("bid", help="package, seal, submit or withdraw bids").add_subparsers(
        dest="bid_command", required=True
    )
    p = bid.add_parser("package", help="build a bid package ZIP from a bid form and documents")
    p.add_argument("--form", type=Path, required=True, help="the bid form (bid.json)")
    p.add_argument(
        "--doc", type=Path, action="append", help="a bid document (repeatable); stored by name"
    )
    p.add_argument("--out", type=Path, required=True, help="the package ZIP to write")
    p.set_defaults(func=cmd_bid_package)
    p = bid.add_parser("seal", help="sign and encrypt a bid package (offline)")
    p.add_argument("--package", type=Path, required=True, help="the bid package ZIP")
    p.add_argument("--tender-cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--oaep-hash", default="sha1")
    p.add_argument(
        "--also-to",
        type=Path,
        action="append",
        help="also seal to this RSA certificate, e.g. your own, to release the key yourself"
        " at the opening (repeatable)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bid_seal)
    p = bid.add_parser("submit", help="submit a sealed envelope")
    common.add_connection_args(p, operator=False)
    p.add_argument("--tender", required=True)
    p.add_argument("--envelope", type=Path, required=True)
    p.add_argument("--signature", type=Path, required=True)
    p.add_argument("--receipt-out", type=Path, default=Path("receipt.p7m"))
    p.set_defaults(func=cmd_bid_submit)
    p = bid.add_parser("withdraw", help="withdraw a bid (signed statement)")
    common.add_connection_args(p, operator=False)
    p.add_argument("--tender", required=True)
    p.add_argument("--bid", required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--receipt-out", type=Path)
    p.set_defaults(func=cmd_bid_withdraw)
    key_release.add_release_key_command(bid)

    receipt = sub.add_parser("receipt", help="verify receipts").add_subparsers(
        dest="receipt_command", required=True
    )
    p = receipt.add_parser("verify", help="verify a receipt offline")
    p.add_argument("receipt", type=Path)
    p.add_argument("--platform-root", type=Path, required=True)
    p.add_argument(
        "--tsa-root",
        type=Path,
        action="append",
        help="also require and check the receipt's time stamp against this TSA root",
    )
    p.set_defaults(func=cmd_receipt_verify)

    p = sub.add_parser("open", help="open a tender (operator, at or after its opening time)")
    common.add_connection_args(p, operator=True)
    p.add_argument("tender")
    p.set_defaults(func=cmd_open)

    record = sub.add_parser("record", help="opening records").add_subparsers(
        dest="record_command", required=True
    )
    p = record.add_parser("show", help="show a tender's opening record")
    common.add_connection_args(p, operator=False)
    p.add_argument("tender")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_record_show)
    record_respond.add_respond_command(record)

    ca.add_ca_commands(sub)
    officer.add_officer_commands(sub)
    console_cmd.add_console_command(sub)

    p = sub.add_parser("dev-pki", help="write a local development PKI")
    p.add_argument("--dir", type=Path, required=True)
    p.set_defaults(func=cmd_dev_pki)

    p = sub.add_parser("demo", help="run the whole bid lifecycle locally")
    p.add_argument("--keep", type=Path, help="keep the demo's files in this directory")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ServiceError as exc:
        print(f"refused: {common.refusal_text(exc)}", file=sys.stderr)
        return 2
    except SealedBidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
