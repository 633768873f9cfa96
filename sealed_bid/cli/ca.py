"""``sealed-bid ca ...``: operator tools on the trust store, run on the service's database.

A thin shell over ``ca_bridge.db_trust_store.DbTrustStore`` (and ``ca_bridge.sync`` for
``sync`` and the sources). These commands open the database named by the settings and,
for ``sync``, the CAs' published URLs; never the PKCS#11 token (so they run
where the token is not reachable, and they add no unsigned entries to the token-signed
audit log). Their changes are recorded in the trust-change log; the running service
forwards them to its audit log and picks them up at its next trust refresh.

``--operator`` is the name recorded for the change; it is not authenticated here (anyone
who can write the database could change it anyway): the two-operator rule for anchors
holds against mistakes and between honest operators, not against a database admin.

SQLAlchemy and ca_bridge are imported inside the commands, so registering them costs
the other commands nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from sealed_bid.cli import common

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ca_bridge.db_trust_store import DbTrustStore
    from ca_bridge.sync import CaSync

Command = Callable[[argparse.Namespace], int]

_SYNC_TIMEOUT_SECONDS = 10.0


def add_ca_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sealed-bid ca`` and its sub-commands on the top-level sub-parsers."""
    ca = sub.add_parser("ca", help="bidder CA trust store (operator tools, on the database)")
    commands = ca.add_subparsers(dest="ca_command", required=True)

    p = commands.add_parser("list", help="list CAs, their certificates and current CRLs")
    common.add_settings_args(p)
    p.add_argument("--all", action="store_true", help="include removed CAs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_refusals(cmd_list))

    p = commands.add_parser("import-dir", help="import a trust directory (<dir>/<ca-id>/...)")
    common.add_settings_args(p)
    p.add_argument("dir", type=Path)
    _operator(p)
    p.set_defaults(func=_refusals(cmd_import_dir))

    p = commands.add_parser("add-anchor", help="propose a trust anchor (pending approval)")
    common.add_settings_args(p)
    p.add_argument("--ca", required=True, help="CA id (created if new)")
    p.add_argument("--cert", type=Path, required=True, help="anchor certificate, PEM or DER")
    p.add_argument("--name", help="display name of a new CA")
    _operator(p)
    p.set_defaults(func=_refusals(cmd_add_anchor))

    p = commands.add_parser("approve", help="approve a pending anchor (a second operator)")
    common.add_settings_args(p)
    p.add_argument("sha256", help="SHA-256 of the anchor certificate, as 'ca list' shows")
    p.add_argument("--ca", help="CA id, if the certificate is pending in several")
    _operator(p)
    p.set_defaults(func=_refusals(cmd_approve))

    p = commands.add_parser("remove", help="remove a CA, or one certificate with --cert")
    common.add_settings_args(p)
    p.add_argument("--ca", help="CA id: without --cert the whole CA is removed")
    p.add_argument("--cert", metavar="SHA256", help="remove only this certificate")
    _operator(p)
    p.set_defaults(func=_refusals(cmd_remove))

    p = commands.add_parser("add-intermediate", help="add an intermediate of a CA")
    common.add_settings_args(p)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", type=Path, required=True, help="certificate, PEM or DER")
    _operator(p)
    p.set_defaults(func=_refusals(cmd_add_intermediate))

    p = commands.add_parser("add-crl", help="add a CRL of a CA (must be newer)")
    common.add_settings_args(p)
    p.add_argument("--ca", required=True)
    p.add_argument("--crl", type=Path, required=True, help="CRL, PEM or DER")
    _operator(p)
    p.set_defaults(func=_refusals(cmd_add_crl))

    p = commands.add_parser("add-source", help="a URL where a CA publishes its bundle or CRL")
    common.add_settings_args(p)
    p.add_argument("--ca", required=True)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--bundle-url", help="PEM certificates: the CA's intermediates")
    where.add_argument("--crl-url", help="one CRL of the CA, DER or PEM")
    _operator(p)
    p.set_defaults(func=_refusals(cmd_add_source))

    p = commands.add_parser("remove-source", help="forget a CA's source URL")
    common.add_settings_args(p)
    p.add_argument("--ca", required=True)
    p.add_argument("--url", required=True)
    p.set_defaults(func=_refusals(cmd_remove_source))

    p = commands.add_parser("sync", help="pull every CA's bundle and CRLs from its sources")
    common.add_settings_args(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (default)")
    mode.add_argument(
        "--interval", type=float, metavar="SECONDS", help="a pass every SECONDS until SIGTERM"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=_SYNC_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"longest one fetch may take (default {_SYNC_TIMEOUT_SECONDS:g})",
    )
    p.set_defaults(func=_refusals(cmd_sync))

    p = commands.add_parser("show-validation", help="print a bid's stored validation result")
    common.add_settings_args(p)
    p.add_argument("bid_id")
    p.set_defaults(func=_refusals(cmd_show_validation))


def _operator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", required=True, help="who makes the change (recorded)")


def _refusals(command: Command) -> Command:
    """A refused change is an answer, not a crash: print its code and exit 2."""

    def run(args: argparse.Namespace) -> int:
        from ca_bridge.errors import CaBridgeError  # noqa: PLC0415

        try:
            return command(args)
        except CaBridgeError as exc:
            print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
            return 2

    return run


def _store(args: argparse.Namespace) -> DbTrustStore:
    from ca_bridge.db_trust_store import DbTrustStore  # noqa: PLC0415

    return DbTrustStore(_engine(args))


def _engine(args: argparse.Namespace) -> Engine:
    """The service database with the trust-store tables (and the sync sources) created."""
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from ca_bridge.store_models import create_trust_schema  # noqa: PLC0415
    from ca_bridge.sync import create_source_schema  # noqa: PLC0415
    from sealed_bid.storage.db import make_engine  # noqa: PLC0415

    engine = make_engine(common.settings_from(args).db_url)
    try:
        create_trust_schema(engine)
        create_source_schema(engine)
    except OperationalError as exc:
        raise SystemExit(f"cannot open the service database: {exc.orig}") from None
    return engine


def _der(path: Path, pem_type: str) -> bytes:
    from asn1crypto import pem  # noqa: PLC0415

    data = path.read_bytes()
    if not pem.detect(data):
        return data
    found = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == pem_type]
    if len(found) != 1:
        raise SystemExit(f"{path}: expected exactly one PEM {pem_type!r}, found {len(found)}")
    return bytes(found[0])


def cmd_list(args: argparse.Namespace) -> int:
    from ca_bridge.db_trust_store import DbTrustStore  # noqa: PLC0415
    from ca_bridge.sync import SyncSources  # noqa: PLC0415

    engine = _engine(args)
    cas = DbTrustStore(engine).list_cas(include_removed=args.all)
    sources = SyncSources(engine).list(active_cas_only=False)
    if args.json:
        listing = [
            asdict(ca) | {"sources": [asdict(s) for s in sources if s.ca_id == ca.ca_id]}
            for ca in cas
        ]
        print(json.dumps(listing, indent=2, default=str))
        return 0
    if not cas:
        print("no CAs in the trust store")
    for ca in cas:
        print(f"{ca.ca_id}  {ca.display_name!r}  {ca.status}  (added by {ca.added_by})")
        for cert in ca.certificates:
            approval = f", approved by {cert.approved_by}" if cert.approved_by else ""
            print(
                f"  {cert.role:<12} {cert.status:<8} {cert.sha256}  {cert.subject}"
                f"  until {cert.not_after:%Y-%m-%d}  ({cert.source}, {cert.added_by}{approval})"
            )
        for crl in ca.crls:
            nxt = f"{crl.next_update:%Y-%m-%d %H:%M}" if crl.next_update else "-"
            print(
                f"  crl          #{crl.crl_number}  {crl.issuer}  "
                f"this {crl.this_update:%Y-%m-%d %H:%M}  next {nxt}  ({crl.source})"
            )
        for source in (s for s in sources if s.ca_id == ca.ca_id):
            print(
                f"  source       {source.kind:<6}  {source.url}"
                f"  (added by {source.added_by} {source.added_at:%Y-%m-%d %H:%M})"
            )
    return 0


def cmd_import_dir(args: argparse.Namespace) -> int:
    report = _store(args).import_directory(args.dir, args.operator)
    print(
        f"imported {args.dir}: CAs added {', '.join(report.cas_added) or '-'}; "
        f"anchors activated {report.anchors_activated}, proposed {report.anchors_proposed}; "
        f"intermediates {report.intermediates_added}; CRLs {report.crls_added}"
    )
    if report.anchors_proposed:
        print("new anchors of existing CAs are pending: a second operator runs 'ca approve'")
    return 0


def cmd_add_anchor(args: argparse.Namespace) -> int:
    record = _store(args).propose_anchor(
        args.ca, _der(args.cert, "CERTIFICATE"), args.operator, display_name=args.name
    )
    print(f"pending anchor {record.sha256} for {record.ca_id}: {record.subject}")
    print(f"a second operator approves with: sealed-bid ca approve {record.sha256} --operator ...")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    record = _store(args).approve_anchor(args.sha256, args.operator, ca_id=args.ca)
    print(
        f"active anchor {record.sha256} for {record.ca_id} "
        f"(proposed by {record.added_by}, approved by {record.approved_by})"
    )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.cert:
        record = store.remove_certificate(args.cert, args.operator, ca_id=args.ca)
        print(f"removed {record.role} {record.sha256} from {record.ca_id}")
        return 0
    if not args.ca:
        raise SystemExit("name the CA (--ca ID) or a certificate (--cert SHA256) to remove")
    store.remove_ca(args.ca, args.operator)
    print(f"removed CA {args.ca}")
    return 0


def cmd_add_intermediate(args: argparse.Namespace) -> int:
    from ca_bridge.store_models import Source  # noqa: PLC0415

    applied = _store(args).add_intermediate(
        args.ca, _der(args.cert, "CERTIFICATE"), args.operator, Source.OPERATOR
    )
    state = "added" if applied.changed else "already held:"
    print(f"{state} intermediate {applied.record.sha256} for {args.ca}")
    return 0


def cmd_add_crl(args: argparse.Namespace) -> int:
    from ca_bridge.store_models import Source  # noqa: PLC0415

    applied = _store(args).add_crl(
        args.ca, _der(args.crl, "X509 CRL"), args.operator, Source.OPERATOR
    )
    state = "added" if applied.changed else "already held:"
    record = applied.record
    print(f"{state} CRL #{record.crl_number} of {record.issuer} for {args.ca}")
    return 0


def cmd_add_source(args: argparse.Namespace) -> int:
    from ca_bridge.sync import SourceKind, SyncSources  # noqa: PLC0415

    kind, url = (
        (SourceKind.BUNDLE, args.bundle_url) if args.bundle_url else (SourceKind.CRL, args.crl_url)
    )
    applied = SyncSources(_engine(args)).add(args.ca, kind, url, args.operator)
    state = "added" if applied.changed else "already held:"
    print(f"{state} {kind} source {url} for {args.ca}; 'sealed-bid ca sync' pulls it")
    return 0


def cmd_remove_source(args: argparse.Namespace) -> int:
    from ca_bridge.sync import SyncSources  # noqa: PLC0415

    removed = SyncSources(_engine(args)).remove(args.ca, args.url)
    if not removed:
        raise SystemExit(f"no source {args.url} for CA {args.ca}")
    print(f"removed {removed} source(s) {args.url} of {args.ca}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """One pass (exit 0 when every source was reachable and valid, else 1), or a pass
    every ``--interval`` seconds until SIGTERM/SIGINT. The changes go to the trust-change
    log; the running service forwards them to its audit log (this command has no token)."""
    from ca_bridge.db_trust_store import DbTrustStore  # noqa: PLC0415
    from ca_bridge.fetching import FetchLimits, HttpFetcher  # noqa: PLC0415
    from ca_bridge.sync import CaSync, SyncSources  # noqa: PLC0415

    if args.timeout <= 0 or (args.interval is not None and args.interval <= 0):
        raise SystemExit("--timeout and --interval must be positive")
    engine = _engine(args)
    # One fetcher for the whole run: a host that keeps failing fails fast (circuit
    # breaker) for the next sources and passes until its cool-down has passed.
    fetcher = HttpFetcher(FetchLimits(request_timeout_seconds=args.timeout))
    job = CaSync(DbTrustStore(engine), SyncSources(engine), fetcher)
    warn = _expiry_warnings(engine, common.settings_from(args).blob_dir)
    if args.interval is None:
        ok = _sync_pass(job)
        warn()
        return 0 if ok else 1
    _sync_until_stopped(job, args.interval, warn)
    return 0


def _sync_pass(job: CaSync) -> bool:
    from datetime import UTC, datetime  # noqa: PLC0415

    from ca_bridge.errors import CaBridgeError  # noqa: PLC0415

    started = datetime.now(UTC).replace(microsecond=0).isoformat()
    try:
        report = job.run_once()
    except CaBridgeError as exc:  # the database, not a source: the loop tries again
        print(f"sync {started}: failed: {exc.code}: {exc.message}", flush=True)
        return False
    errors = sum(r.outcome == "error" for r in report.results)
    if not report.results:
        print(f"sync {started}: no sources; add them with 'sealed-bid ca add-source'")
    else:
        print(f"sync {started}: {len(report.results)} source(s), {errors} error(s)")
    for line in report.lines():
        print(line)
    sys.stdout.flush()
    return report.ok


def _expiry_warnings(engine: Engine, blob_dir: Path) -> Callable[[], None]:
    """After each pass: bids whose signer certificate expires before their opening (only
    where this database is a service's, with its blob store)."""
    from sqlalchemy import inspect  # noqa: PLC0415

    from sealed_bid.service.expiry import expiring_signers  # noqa: PLC0415
    from sealed_bid.storage.blobstore import BlobStore  # noqa: PLC0415

    def warn() -> None:
        if not blob_dir.is_dir() or not inspect(engine).has_table("bids"):
            return
        for warning in expiring_signers(engine, BlobStore(blob_dir)):
            print(f"warning: {warning.line()}")
        sys.stdout.flush()

    return warn


def _sync_until_stopped(job: CaSync, interval: float, warn: Callable[[], None]) -> None:
    # SIGTERM/SIGINT are blocked and only taken between passes, so a pass (and its
    # transactions) is never cut in half; a pass is bounded by the fetch time-outs.
    import signal  # noqa: PLC0415

    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    while True:
        _sync_pass(job)
        warn()
        if signal.sigtimedwait(stop, interval) is not None:
            print("sync stopped", flush=True)
            return


def cmd_show_validation(args: argparse.Namespace) -> int:
    """Print the bid's stored validation record and re-check it offline from the stored
    evidence. Prints no bidder names: the opening record is where identities appear.
    Before the opening the record is sealed to the tender key: refused with BID_SEALED."""
    from ca_bridge.db_trust_store import DbTrustStore  # noqa: PLC0415
    from sealed_bid.errors import BidSealed  # noqa: PLC0415
    from sealed_bid.service.revalidation import recheck_bid  # noqa: PLC0415
    from sealed_bid.storage.blobstore import BlobStore  # noqa: PLC0415
    from sealed_bid.storage.db import make_engine  # noqa: PLC0415

    settings = common.settings_from(args)
    engine = make_engine(settings.db_url)
    try:
        trust = DbTrustStore(engine).snapshot()
        recheck = recheck_bid(engine, BlobStore(settings.blob_dir), trust, args.bid_id)
    except BidSealed as exc:
        print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(recheck.stored, indent=2, ensure_ascii=False))
    result = recheck.result
    print(
        f"re-validated offline at {result.validated_at.isoformat()} under CA {result.ca_id}"
        f" with {len(result.revocation_evidence)} stored revocation item(s): valid"
    )
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0
