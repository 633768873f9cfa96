"""Opening benchmark: what issue 5's trusted time and quorum custody cost, each next to a
baseline measured in the same run.

1. Receipts: a small sealed bid submitted through the real gRPC service with a TSA
   configured (the receipt carries a CAdES signature time stamp) and through a second
   service with none (``tsa_url=""``: no time stamp), interleaved.
2. The TSA round trip alone: ``TimestampClient.stamp`` against the dev TSA over loopback
   HTTP, and ``verify_token`` of the token it returned (offline).
3. Tender creation: scheduled (the key on the platform token) vs. quorum, 2 of the 3 dev
   officers (a new SoftHSM2 token per tender, the key generated there, the PIN split).
4. The opening of a tender with N small bids from N different bidders: scheduled vs.
   quorum (two officers present their shares first, untimed), and apart from it the
   record PDF: ``render_record_pdf`` and ``sign_record_pdf`` on the record JSON each
   opening produced, with the TSA's time stamps and without them.

Everything runs in this process, as tests/e2e/conftest.py assembles it: two state
directories (each ``init_local``: dev PKI, SQLite, a SoftHSM2 token of its own) under one
SoftHSM2 configuration, all tokens created before the PKCS#11 module is loaded; a dev
RFC 3161 TSA on 127.0.0.1 following a ``ManualClock`` shared by both services; real gRPC
servers with TLS on 127.0.0.1. Bidders are the dev PKI's good bidders, plus (for openings
of more than four bids) bidders the dev issuing CA certifies here, because a bidder has
one current bid per tender and replaced bids are never decrypted. Everything lives in one
temporary directory that is deleted at the end.

Run from the repository root: ``.venv/bin/python -m bench.opening [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from statistics import median
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.sign.timestamps import HTTPTimeStamper

from ca_bridge.identity import uscc_check_character
from sealed_bid.api.server import SealedBidServer
from sealed_bid.app import Application, build_server, init_local, open_application
from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.config import Settings, load_settings
from sealed_bid.crypto.certs import issue_certificate, signing_profile
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.crypto.share_envelope import open_share
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.devpki import BIDDER_CA_ID, GOOD_BIDDERS, OFFICERS, DevPki, load_signer
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.clock import ManualClock
from sealed_bid.domain.ids import TenderId
from sealed_bid.hsm.softhsm import init_softhsm_token, write_softhsm_conf
from sealed_bid.hsm.token import RECEIPT_KEY
from sealed_bid.records.pades import sign_record_pdf
from sealed_bid.records.pdf_render import render_record_pdf
from sealed_bid.timestamping import TimestampClient, signature_timestamp_of, verify_token
from sealed_bid.timestamping.dev_tsa import DevTsaServer, load_dev_tsa, load_dev_tsa_signer
from sealed_bid.v1 import sealed_bid_pb2 as pb

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    receipts: int
    """Timed submissions per case (TSA / no TSA), after one untimed warm-up each."""
    stamps: int
    """TimestampClient.stamp calls, and as many verify_token calls."""
    creations: int
    """Tenders created per kind (scheduled / quorum)."""
    bids: int
    """Bids in each opened tender, each from a different bidder."""
    pdf_runs: int
    """Render + sign runs per opened record and case (with / without the TSA)."""


DEFAULT_PLAN = Plan(receipts=50, stamps=100, creations=5, bids=20, pdf_runs=7)
QUICK_PLAN = Plan(receipts=20, stamps=30, creations=2, bids=8, pdf_runs=3)
QUORUM_THRESHOLD = 2
PRESENTING_OFFICERS = ("officer-1", "officer-2")
DOCUMENT_BYTES = 2048
"""The one document in each bid package: a few KiB of text, so the envelope is small."""
TENDER_DEADLINE_IN = timedelta(hours=1)
OPENING_AFTER_DEADLINE = timedelta(minutes=30)
SIGNING_STEP = timedelta(seconds=1)
"""The clock moves on this much before each bid is signed: a bidder's bids must carry
strictly increasing signingTimes (CMS signingTime has one-second resolution)."""


# --- Statistics and printing ----------------------------------------------------------
@dataclass(frozen=True)
class Series:
    label: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return median(self.seconds)

    @property
    def p90(self) -> float:
        """Nearest rank, as bench/validation.py."""
        ordered = sorted(self.seconds)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]

    def row(self) -> str:
        return (
            f"  {self.label:<44} {self.median:>9.4f} {self.p90:>9.4f}"
            f" {min(self.seconds):>9.4f} {len(self.seconds):>5}"
        )


SERIES_HEADER = f"  {'case':<44} {'median s':>9} {'p90 s':>9} {'min s':>9} {'runs':>5}"


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def peak_rss_mib() -> float | None:
    """This process's peak resident set (VmHWM), MiB; None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _heading(text: str) -> None:
    print(f"\n{text}", flush=True)


# --- The two services -----------------------------------------------------------------
@dataclass
class Instance:
    """One in-process service: its application, gRPC server and clients."""

    name: str
    settings: Settings
    pki: DevPki
    app: Application
    server: SealedBidServer
    bidder: SealedBidClient
    operator: SealedBidClient
    officers: dict[str, SealedBidClient]

    @property
    def root_der(self) -> bytes:
        return _cert_der(self.pki.platform_root.cert.read_bytes())


def _cert_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _start(
    name: str, settings: Settings, pki: DevPki, clock: ManualClock, stack: contextlib.ExitStack
) -> Instance:
    app = open_application(settings, clock)
    stack.callback(app.close)
    server = build_server(app, "127.0.0.1:0", "127.0.0.1:0", "")
    server.start()
    stack.callback(server.stop)
    root = pki.platform_root.cert.read_bytes()
    operator_address = f"127.0.0.1:{server.operator_port}"

    def client(address: str, key: Path | None = None, cert: Path | None = None) -> SealedBidClient:
        return stack.enter_context(
            SealedBidClient(
                address,
                root,
                None if key is None else key.read_bytes(),
                None if cert is None else cert.read_bytes(),
            )
        )

    return Instance(
        name=name,
        settings=settings,
        pki=pki,
        app=app,
        server=server,
        bidder=client(f"127.0.0.1:{server.public_port}"),
        operator=client(operator_address, pki.operator.key, pki.operator.cert),
        officers={
            officer: client(operator_address, pki.officers[officer].key, pki.officers[officer].cert)
            for officer in OFFICERS
        },
    )


# --- Bidders and bids -----------------------------------------------------------------
@dataclass(frozen=True)
class Bidder:
    company: str
    signer: SoftwareSigner


def dev_bidders(pki: DevPki) -> list[Bidder]:
    return [Bidder(pki.bidders[n].company, load_signer(pki.bidders[n])) for n in GOOD_BIDDERS]


def extra_bidders(pki: DevPki, count: int, now: datetime) -> list[Bidder]:
    """``count`` more bidders certified here by the dev issuing CA, with the dev good
    bidders' certificate profile (signing key usage, the same CRL distribution point),
    a company name and a well-formed credit code; keys RSA-2048 and P-256 in the dev
    set's proportion (three RSA to one EC)."""
    issuing_key = serialization.load_pem_private_key(
        pki.bidder_issuing.key.read_bytes(), password=None
    )
    assert isinstance(issuing_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    issuer = SoftwareSigner(issuing_key, _cert_der(pki.bidder_issuing.cert.read_bytes()))
    model = x509.load_pem_x509_certificate(pki.bidders[GOOD_BIDDERS[0]].cert.read_bytes())
    points = model.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    urls = tuple(
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    )
    profile = signing_profile(crl_distribution_urls=urls)
    made: list[Bidder] = []
    for number in range(1, count + 1):
        company = f"Bench Bidder {number:02d} Co., Ltd."
        prefix = f"91410200MB{number:07d}"
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if number % 4 == 2
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, company),
                x509.NameAttribute(NameOID.COMMON_NAME, company),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, prefix + uscc_check_character(prefix)),
            ]
        )
        cert = issue_certificate(
            issuer,
            subject,
            key.public_key(),
            (now - timedelta(days=1)).replace(microsecond=0),
            (now + timedelta(days=365)).replace(microsecond=0),
            None,
            profile,
        )
        made.append(Bidder(company, SoftwareSigner(key, cert)))
    return made


class Sealer:
    """Seals small, valid bids (bid.json plus one short text document) for a tender,
    each signed at the clock's time after moving it on by ``SIGNING_STEP``."""

    def __init__(self, work: Path, clock: ManualClock) -> None:
        self._work = work
        self._clock = clock
        self._count = 0

    def seal(self, tender: pb.Tender, bidder: Bidder) -> SealedBid:
        self._count += 1
        work = self._work / f"bid-{self._count:05d}"
        work.mkdir(parents=True)
        form = BidForm(
            tender_id=TenderId(tender.tender_id),
            bidder_name=bidder.company,
            price=Decimal(1_000_000 + self._count),
            currency="CNY",
            duration_days=180,
            fields={"warranty_years": "3"},
        )
        document = work / "technical-proposal.txt"
        line = f"Technical proposal of {bidder.company}.\n"
        document.write_text((line * (DOCUMENT_BYTES // len(line) + 1))[:DOCUMENT_BYTES])
        package = work / "package.zip"
        with package.open("wb") as dst:
            build_package(form, {document.name: document}, dst)
        self._clock.advance(SIGNING_STEP)
        return seal_bid(
            package,
            bidder.signer,
            tender.tender_certificate,
            work,
            oaep_hash=tender.algorithms.oaep_hashes[0],
            signing_time=self._clock.now(),
        )

    @staticmethod
    def discard(sealed: SealedBid) -> None:
        shutil.rmtree(sealed.envelope_path.parent)


def submit(instance: Instance, tender: pb.Tender, sealed: SealedBid) -> pb.Receipt:
    try:
        return instance.bidder.submit_bid(
            tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
        ).receipt
    finally:
        Sealer.discard(sealed)


# --- Tenders --------------------------------------------------------------------------
_tender_numbers = iter(range(1, 10_000))


def create_tender(instance: Instance, clock: ManualClock, kind: str) -> pb.Tender:
    """A tender opening 1.5 h from the clock's now: ``scheduled`` or ``quorum`` (2 of the
    3 dev officers)."""
    now = clock.now()
    deadline = now + TENDER_DEADLINE_IN
    tender_id = f"BENCH-{kind[0].upper()}-{next(_tender_numbers):03d}"
    title = f"Opening benchmark, {kind} tender"
    if kind == "quorum":
        officers = tuple(
            _cert_der(instance.pki.officers[name].cert.read_bytes()) for name in OFFICERS
        )
        return instance.operator.create_tender(
            tender_id,
            title,
            deadline,
            deadline + OPENING_AFTER_DEADLINE,
            [BIDDER_CA_ID],
            quorum_threshold=QUORUM_THRESHOLD,
            officer_certificates=officers,
        )
    return instance.operator.create_tender(
        tender_id, title, deadline, deadline + OPENING_AFTER_DEADLINE, [BIDDER_CA_ID]
    )


def present_shares(instance: Instance, tender_id: str) -> None:
    """What two officers do on their own machines: fetch their sealed share, decrypt it
    with their own key, present it over mutual TLS."""
    for name in PRESENTING_OFFICERS:
        client = instance.officers[name]
        key = serialization.load_pem_private_key(
            instance.pki.officers[name].key.read_bytes(), password=None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        share = open_share(client.get_officer_share(tender_id).sealed_share, key)
        client.present_share(tender_id, share)


# --- The measurements -----------------------------------------------------------------
@dataclass(frozen=True)
class ReceiptResults:
    with_tsa: Series
    without_tsa: Series
    envelope_bytes: int
    stamped: tuple[int, int]
    """How many receipts of each case (warm-up included) carry a signature time stamp."""
    receipts: int
    """Receipts per case, warm-up included."""


def measure_receipts(
    with_tsa: Instance, without_tsa: Instance, clock: ManualClock, sealer: Sealer, runs: int
) -> ReceiptResults:
    cases = (with_tsa, without_tsa)
    tenders = {c.name: create_tender(c, clock, "scheduled") for c in cases}
    bidders = {c.name: dev_bidders(c.pki) for c in cases}
    seconds: dict[str, list[float]] = {c.name: [] for c in cases}
    stamped = {c.name: 0 for c in cases}
    sizes: list[int] = []
    for index in range(runs + 1):  # the first round is the untimed warm-up
        for case in cases if index % 2 == 0 else cases[::-1]:
            bidder = bidders[case.name][index % len(GOOD_BIDDERS)]
            sealed = sealer.seal(tenders[case.name], bidder)
            sizes.append(sealed.size)
            receipt, took = timed(partial(submit, case, tenders[case.name], sealed))
            stamped[case.name] += signature_timestamp_of(receipt.signed_receipt) is not None
            if index > 0:
                seconds[case.name].append(took)
    return ReceiptResults(
        Series("SubmitBid, TSA configured (receipt stamped)", tuple(seconds[with_tsa.name])),
        Series("SubmitBid, no TSA (baseline)", tuple(seconds[without_tsa.name])),
        int(median(sizes)),
        (stamped[with_tsa.name], stamped[without_tsa.name]),
        runs + 1,
    )


def measure_tsa(tsa_url: str, roots: Sequence[bytes], runs: int) -> tuple[Series, Series]:
    client = TimestampClient(tsa_url, roots)
    client.stamp(secrets.token_bytes(32))  # warm-up
    stamps: list[float] = []
    tokens: list[tuple[bytes, bytes]] = []
    for _ in range(runs):
        digest = secrets.token_bytes(32)
        token, took = timed(partial(client.stamp, digest))
        stamps.append(took)
        tokens.append((token.der, digest))
    verifications = [
        timed(partial(verify_token, token_der, digest, roots))[1] for token_der, digest in tokens
    ]
    return (
        Series("TimestampClient.stamp (HTTP + verify)", tuple(stamps)),
        Series("verify_token (offline)", tuple(verifications)),
    )


KINDS = ("scheduled", "quorum")


def measure_creation(
    instance: Instance, clock: ManualClock, runs: int
) -> tuple[Series, Series, dict[str, list[pb.Tender]]]:
    """Scheduled and quorum creations, alternating; returns the tenders made."""
    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    made: dict[str, list[pb.Tender]] = {kind: [] for kind in KINDS}
    for index in range(runs):
        for kind in KINDS if index % 2 == 0 else KINDS[::-1]:
            tender, took = timed(partial(create_tender, instance, clock, kind))
            seconds[kind].append(took)
            made[kind].append(tender)
    return (
        Series("CreateTender, scheduled (platform token)", tuple(seconds["scheduled"])),
        Series(
            f"CreateTender, quorum {QUORUM_THRESHOLD} of {len(OFFICERS)} (own token)",
            tuple(seconds["quorum"]),
        ),
        made,
    )


@dataclass(frozen=True)
class OpeningResult:
    kind: str
    bids: int
    opened: int
    """OPENED rows over all openings of this kind (all bids: ``bids`` x openings)."""
    total: Series
    render: Series
    sign_tsa: Series
    sign_plain: Series
    pdf_bytes: int


def measure_openings(
    instance: Instance,
    clock: ManualClock,
    sealer: Sealer,
    tenders: dict[str, list[pb.Tender]],
    bidders: Sequence[Bidder],
    tsa_url: str,
    pdf_runs: int,
) -> list[OpeningResult]:
    """Every tender gets one bid from each bidder (untimed); then the clock passes the
    opening times and the tenders are opened, the kinds alternating. The record PDF is
    measured apart on the last record of each kind."""
    every = [tender for kind in KINDS for tender in tenders[kind]]
    for tender in every:
        for bidder in bidders:
            submit(instance, tender, sealer.seal(tender, bidder))
    latest = max(t.opening_time.ToDatetime().replace(tzinfo=UTC) for t in every)
    clock.set(latest + timedelta(seconds=1))
    totals: dict[str, list[float]] = {kind: [] for kind in KINDS}
    opened = dict.fromkeys(KINDS, 0)
    last: dict[str, pb.OpeningRecord] = {}
    for index in range(max(len(tenders[kind]) for kind in KINDS)):
        for kind in KINDS if index % 2 == 0 else KINDS[::-1]:
            if index >= len(tenders[kind]):
                continue
            tender_id = tenders[kind][index].tender_id
            if kind == "quorum":
                present_shares(instance, tender_id)
            record, took = timed(partial(instance.operator.open_tender, tender_id))
            totals[kind].append(took)
            opened[kind] += [r["status"] for r in _json_rows(record.record_json)].count("OPENED")
            last[kind] = record
    return [
        OpeningResult(
            kind,
            len(bidders),
            opened[kind],
            Series(f"OpenTender, {kind}", tuple(totals[kind])),
            *measure_pdf(instance, clock, last[kind].record_json, tsa_url, pdf_runs),
            len(last[kind].record_pdf),
        )
        for kind in KINDS
    ]


def _json_rows(record_json: str) -> list[dict[str, object]]:
    rows = json.loads(record_json)["bids"]
    assert isinstance(rows, list)
    return rows


def measure_pdf(
    instance: Instance, clock: ManualClock, record_json: str, tsa_url: str, runs: int
) -> tuple[Series, Series, Series]:
    """The record PDF as the opening makes it: rendered, then signed on the token with
    the platform receipt key, with the TSA (signature + document time stamps) and without
    (PAdES B-B, the baseline); the two signing cases alternate."""
    ctx = instance.app.context
    settings = instance.settings
    renders: list[float] = []
    signs: dict[bool, list[float]] = {True: [], False: []}
    for index in range(runs):
        pdf, took = timed(partial(render_record_pdf, record_json, generated_at=clock.now()))
        renders.append(took)
        for with_tsa in (True, False) if index % 2 == 0 else (False, True):
            stamper = (
                HTTPTimeStamper(tsa_url, timeout=settings.limits.tsa_timeout_seconds)
                if with_tsa
                else None
            )
            _, took = timed(
                partial(
                    sign_record_pdf,
                    pdf,
                    token=ctx.token,
                    key_label=RECEIPT_KEY,
                    certificate_der=ctx.receipt_signer.certificate_der,
                    chain_der=(instance.root_der,),
                    timestamper=stamper,
                )
            )
            signs[with_tsa].append(took)
    return (
        Series("render_record_pdf", tuple(renders)),
        Series("sign_record_pdf, TSA (B-T + document stamp)", tuple(signs[True])),
        Series("sign_record_pdf, no TSA (B-B, baseline)", tuple(signs[False])),
    )


# --- The run --------------------------------------------------------------------------
def run(plan: Plan, tmp_parent: Path | None) -> int:
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, format="  [log] %(name)s: %(message)s")
    # Only the PKCS#11 module may come from the caller's configuration (as in the demo).
    module = load_settings(None).pkcs11_module
    with (
        tempfile.TemporaryDirectory(prefix="sealed-bid-bench-opening-", dir=tmp_parent) as text,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(text)
        print(f"work directory {tmp} (deleted at the end)")
        print(
            f"plan: {plan.receipts} receipts per case, {plan.stamps} TSA stamps,"
            f" {plan.creations} tenders per kind, openings of {plan.bids} bids,"
            f" {plan.pdf_runs} record-PDF runs per case",
            flush=True,
        )
        conf = write_softhsm_conf(Settings(state_dir=tmp / "softhsm"))
        base = Settings(softhsm_conf=str(conf), pkcs11_module=module)
        with_tsa = dataclasses.replace(base, state_dir=tmp / "with-tsa", token_label="bench-tsa")
        without_tsa = dataclasses.replace(
            base, state_dir=tmp / "without-tsa", token_label="bench-no-tsa"
        )
        print("init: two SoftHSM2 tokens, platform keys, two dev PKIs ...", flush=True)
        init_start = time.perf_counter()
        # SoftHSM2 sees only the tokens that exist when the module is first loaded, and
        # init_local loads it: create both tokens (a softhsm2-util child each) first.
        for settings in (with_tsa, without_tsa):
            init_softhsm_token(settings)
        now = datetime.now(UTC).replace(microsecond=0)
        pki_tsa = init_local(with_tsa, now)
        pki_plain = init_local(without_tsa, now)
        clock = ManualClock(now)
        tsa_files = load_dev_tsa(with_tsa.pki_path / "tsa")
        tsa = DevTsaServer(load_dev_tsa_signer(tsa_files), clock=clock.now).start()
        stack.callback(tsa.stop)
        with_tsa = dataclasses.replace(with_tsa, tsa_url=tsa.url)
        served = _start("tsa", with_tsa, pki_tsa, clock, stack)
        plain = _start("no-tsa", without_tsa, pki_plain, clock, stack)
        if served.app.context.timestamps is None or plain.app.context.timestamps is not None:
            print("error: the services' TSA configuration is not as planned")
            return 1
        extra = extra_bidders(pki_tsa, max(0, plan.bids - len(GOOD_BIDDERS)), now)
        print(f"set-up took {time.perf_counter() - init_start:.1f} s", flush=True)
        sealer = Sealer(tmp / "bids", clock)
        try:
            _heading("1. Receipt time stamp: SubmitBid latency (interleaved, same process)")
            receipts = measure_receipts(served, plain, clock, sealer, plan.receipts)
            print(
                f"  envelope ~{receipts.envelope_bytes} B; receipts with a signature time stamp:"
                f" {receipts.stamped[0]}/{receipts.receipts} with TSA,"
                f" {receipts.stamped[1]}/{receipts.receipts} without"
            )
            print(SERIES_HEADER)
            print(receipts.with_tsa.row())
            print(receipts.without_tsa.row())
            extra_s = receipts.with_tsa.median - receipts.without_tsa.median
            print(f"  {'difference of the medians':<44} {extra_s:>9.4f}", flush=True)

            _heading("2. The TSA round trip alone (dev TSA over loopback HTTP)")
            stamp, verify = measure_tsa(tsa.url, [tsa_files.root_der()], plan.stamps)
            print(SERIES_HEADER)
            print(stamp.row())
            print(verify.row(), flush=True)

            _heading("3. Tender creation (CreateTender over the operator port)")
            scheduled, quorum, made = measure_creation(served, clock, plan.creations)
            print(SERIES_HEADER)
            print(scheduled.row())
            print(quorum.row(), flush=True)

            _heading(f"4. Opening tenders of {plan.bids} bids (OpenTender; every tender of step 3)")
            bidders = [*dev_bidders(pki_tsa), *extra][: plan.bids]
            print(
                f"  bidders: {min(plan.bids, len(GOOD_BIDDERS))} dev good bidders and"
                f" {len(bidders) - min(plan.bids, len(GOOD_BIDDERS))} certified here by the"
                " dev issuing CA; one bid each per tender"
            )
            openings = measure_openings(
                served, clock, sealer, made, bidders, tsa.url, plan.pdf_runs
            )
            print_openings(openings, stamp.median)
        except ServiceError as exc:
            print(f"\nthe service refused: {exc.code} ({exc.status}): {exc.message}")
            return 1
    rss = peak_rss_mib()
    _heading("Process")
    print(f"  peak RSS (VmHWM) {'n/a' if rss is None else f'{rss:.1f} MiB'}")
    print(f"  wall time {time.perf_counter() - started:.1f} s")
    return 0


def print_openings(openings: Sequence[OpeningResult], tsa_stamp_s: float) -> None:
    print(
        f"  {'kind':<10} {'bids':>4} {'opened':>7} {'median s':>9} {'p90 s':>7}"
        f" {'per bid s':>9} {'pdf s':>6} {'pdf %':>5} {'rest/bid s':>10} {'pdf B':>7}"
    )
    for o in openings:
        total = o.total.median
        pdf_s = o.render.median + o.sign_tsa.median
        # The opening's own time proof is one TSA stamp; the rest is the per-bid work.
        rest = (total - pdf_s - tsa_stamp_s) / o.bids
        opened = f"{o.opened}/{o.bids * len(o.total.seconds)}"
        print(
            f"  {o.kind:<10} {o.bids:>4} {opened:>7} {total:>9.3f} {o.total.p90:>7.3f}"
            f" {total / o.bids:>9.4f} {pdf_s:>6.3f} {100 * pdf_s / total:>4.0f}%"
            f" {rest:>10.4f} {o.pdf_bytes:>7}"
        )
    print(
        "  (median / p90 over the openings of a kind; pdf s = median render + median sign"
        " with TSA\n   below; rest/bid = (median - pdf s - one TSA stamp of step 2) / bids)"
    )
    for o in openings:
        print(f"  the last {o.kind} record ({o.bids} bids) as a PDF, rendered and signed anew:")
        print(SERIES_HEADER)
        for series in (o.render, o.sign_tsa, o.sign_plain):
            print(series.row())
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.opening",
        description="Costs of trusted time and quorum custody: receipt time stamps, the"
        " TSA round trip, tender creation, and openings, each next to a baseline.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"fewer runs and {QUICK_PLAN.bids}-bid openings (under a minute)",
    )
    parser.add_argument(
        "--tmp-dir", type=Path, help="parent of the work directory (default: system temp)"
    )
    args = parser.parse_args(argv)
    return run(QUICK_PLAN if args.quick else DEFAULT_PLAN, args.tmp_dir)


if __name__ == "__main__":
    sys.exit(main())
