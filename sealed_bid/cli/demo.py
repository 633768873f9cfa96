"""``sealed-bid demo``: one tender's whole life on this machine, narrated for a new user.

It sets up its own SoftHSM2 token and development PKI in a fresh directory, runs the real
service in this process on 127.0.0.1 (ephemeral ports, system clock) and plays the
operator and the bidders through the client library, the SDK and the openssl CLI, as
anyone could. It holds no rule of its own: every refusal it shows comes from the service.
It never prints the token PIN (only the service reads it, from its 0600 file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sealed_bid.app import build_server, init_local, open_application
from sealed_bid.cli.common import load_signer, print_record, refusal_text
from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.config import Settings, load_settings
from sealed_bid.console.headless import open_through_console
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.crypto.share_envelope import open_share
from sealed_bid.crypto.signed_data import sign_attached, sign_detached
from sealed_bid.devpki import BIDDER_CA_ID, OFFICERS, DevPki
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.clock import SystemClock
from sealed_bid.domain.ids import BidId, TenderId
from sealed_bid.domain.withdrawal import WithdrawalStatement
from sealed_bid.service.receipts import verify_receipt
from sealed_bid.timestamping.dev_tsa import DevTsaServer, load_dev_tsa, load_dev_tsa_signer
from sealed_bid.v1 import sealed_bid_pb2 as pb

DEADLINE_AFTER = timedelta(seconds=8)
"""From tender creation to the submission deadline: time enough for the good bids."""
OPENING_AFTER_DEADLINE = timedelta(seconds=10)
_MARGIN_SECONDS = 0.3
"""How long to wait past a deadline or opening time, so clock granularity never matters."""
_OPENSSL_TIMEOUT_SECONDS = 60


class DemoFailed(Exception):
    """The service did not behave as the demo's story says it must."""


@dataclass
class _Stage:
    """The demo's working directory, service and clients."""

    base: Path
    settings: Settings
    pki: DevPki
    bidder: SealedBidClient
    operator: SealedBidClient
    officers: dict[str, SealedBidClient]
    started: float

    @property
    def receipts(self) -> Path:
        return self.base / "receipts"

    @property
    def bids(self) -> Path:
        return self.base / "bids"


def run_demo(keep: Path | None) -> int:
    """Run the demo in a temporary directory (removed afterwards) or in ``keep``."""
    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            print(f"error: {keep} is not empty; name a new or empty directory", file=sys.stderr)
            return 2
        keep.mkdir(parents=True, exist_ok=True)
        base = keep.resolve()
    else:
        base = Path(tempfile.mkdtemp(prefix="sealed-bid-demo-"))
    try:
        return _run(base, kept=keep is not None)
    except DemoFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _run(base: Path, *, kept: bool) -> int:
    started = time.monotonic()
    print("Sealed Bid demo: one tender, from creation to opening, on this machine.")
    print("Everything is local: a SoftHSM2 token, a development PKI and the gRPC service.")

    _heading("1. Set-up")
    # Only the PKCS#11 module may come from the user's configuration: the demo owns
    # its state directory, database and token.
    settings = Settings(state_dir=base / "state", pkcs11_module=load_settings(None).pkcs11_module)
    pki = init_local(settings, datetime.now(UTC))
    _say(f"state directory:  {settings.state_dir}")
    _say(f"token:            SoftHSM2 token {settings.token_label!r} (its PIN is never shown)")
    _say(f"dev PKI:          {pki.directory} (development only: keys unencrypted)")
    with contextlib.ExitStack() as running:
        tsa = DevTsaServer(load_dev_tsa_signer(load_dev_tsa(settings.pki_path / "tsa"))).start()
        running.callback(tsa.stop)
        settings = dataclasses.replace(settings, tsa_url=tsa.url)
        _say(f"time stamps:      a dev RFC 3161 TSA at {tsa.url} (proves the opening time)")
        app = open_application(settings, SystemClock())
        running.callback(app.close)
        server = build_server(app, "127.0.0.1:0", "127.0.0.1:0")
        server.start()
        running.callback(server.stop, None)
        root_pem = pki.platform_root.cert.read_bytes()
        bidder = running.enter_context(SealedBidClient(f"127.0.0.1:{server.public_port}", root_pem))
        operator = running.enter_context(
            SealedBidClient(
                f"127.0.0.1:{server.operator_port}",
                root_pem,
                pki.operator.key.read_bytes(),
                pki.operator.cert.read_bytes(),
            )
        )
        _say(
            f"service:          public TLS 127.0.0.1:{server.public_port}, operator mTLS "
            f"127.0.0.1:{server.operator_port}"
        )
        officers = {
            name: running.enter_context(
                SealedBidClient(
                    f"127.0.0.1:{server.operator_port}",
                    root_pem,
                    pki.officers[name].key.read_bytes(),
                    pki.officers[name].cert.read_bytes(),
                )
            )
            for name in OFFICERS
        }
        stage = _Stage(base, settings, pki, bidder, operator, officers, started)
        record_path = _story(stage)
    _heading("Where things are")
    _say(f"opening record:   {record_path}")
    _say(f"receipts:         {stage.receipts}")
    _say(f"bids as sealed:   {stage.bids}")
    _say(f"service state:    {settings.state_dir} (sealed-bid.db, blobs/, token)")
    if kept:
        _say("Verify a receipt yourself:")
        _say(
            "  sealed-bid receipt verify "
            f"{shlex.quote(str(stage.receipts / 'alpha-2.p7m'))} --platform-root "
            f"{shlex.quote(str(pki.platform_root.cert))}"
        )
    else:
        _say("(all of it is deleted now; run `sealed-bid demo --keep DIR` to keep it)")
    print(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    return 0


def _story(stage: _Stage) -> Path:
    """The tender's life; returns where the opening record was written."""
    pki = stage.pki
    stage.receipts.mkdir(parents=True, exist_ok=True)

    _heading("2. The tenderee creates a tender")
    now = datetime.now(UTC)
    tender_id = f"DEMO-{now:%Y%m%d-%H%M%S}"
    deadline = now + DEADLINE_AFTER
    opening_time = deadline + OPENING_AFTER_DEADLINE
    tender = stage.operator.create_tender(
        tender_id,
        "Ring road resurfacing, lot 1",
        deadline,
        opening_time,
        [BIDDER_CA_ID],
        quorum_threshold=2,
        officer_certificates=tuple(_cert_der(pki.officers[name].cert) for name in OFFICERS),
    )
    tender_pem = stage.base / "tender-cert.pem"
    tender_pem.write_bytes(
        x509.load_der_x509_certificate(tender.tender_certificate).public_bytes(
            serialization.Encoding.PEM
        )
    )
    oaep_hash = tender.algorithms.oaep_hashes[0]
    _event(
        stage,
        f"created tender {tender_id} with a quorum of 2 of 3 opening officers: its RSA-3072"
        " key was generated on a token of its own, under a random PIN that was split into"
        " three shares, each encrypted to one officer; nobody holds the PIN",
    )
    _say(f"deadline:         {deadline:%H:%M:%S} UTC (in {DEADLINE_AFTER.seconds} s)")
    _say(f"opening time:     {opening_time:%H:%M:%S} UTC")
    _say(f"tender cert:      {tender_pem} (bidders encrypt to it; OAEP hash {oaep_hash})")

    _heading("3. Bidders seal and submit before the deadline")
    _say("Each bid: ZIP (bid.json + documents) -> signed (CMS SignedData) -> encrypted to")
    _say("the tender certificate (CMS AuthEnvelopedData, AES-256-GCM, RSA-OAEP) -> a")
    _say("detached signature over the envelope. The service can read none of it yet.")
    earlier = datetime.now(UTC) - timedelta(seconds=2)

    alpha_1 = _seal_with_sdk(stage, tender, "alpha", "alpha-1", "1250000.00", earlier)
    _submit(stage, tender_id, "Alpha (SDK)", alpha_1, "alpha-1")

    beta = _seal_with_sdk(stage, tender, "beta", "beta", "1230500.00", earlier)
    _submit(stage, tender_id, "Beta (SDK, EC key)", beta, "beta")

    _seal_and_submit_with_openssl(stage, tender_id, tender_pem, oaep_hash)

    gamma = _seal_with_sdk(stage, tender, "gamma", "gamma", "1300000.00", earlier)
    gamma_receipt = _submit(stage, tender_id, "Gamma (SDK)", gamma, "gamma")

    _say("")
    _say("Gamma changes its mind and withdraws, with a statement it signs:")
    gamma_files = pki.bidders["gamma"]
    statement = WithdrawalStatement(TenderId(tender_id), BidId(gamma_receipt.content.bid_id))
    signed = sign_attached(
        load_signer(gamma_files.key, gamma_files.cert), statement.to_bytes(), datetime.now(UTC)
    )
    withdrawal = stage.bidder.withdraw_bid(signed)
    (stage.receipts / "gamma-withdrawal.p7m").write_bytes(withdrawal.signed_receipt)
    _event(stage, f"withdrawn: bid {withdrawal.content.bid_id} (withdrawal receipt saved)")

    _say("")
    _say("An envelope arrives whose signature was made over other bytes (as if it had been")
    _say("altered after signing):")
    forged = _seal_with_sdk(stage, tender, "beta", "beta-tampered", "999.00", None)
    beta_files = pki.bidders["beta"]
    wrong_signature = sign_detached(
        load_signer(beta_files.key, beta_files.cert),
        hashlib.sha256(b"some other envelope").digest(),
        datetime.now(UTC),
    )
    (forged.envelope_path.parent / "bid.p7s").write_bytes(wrong_signature)
    _expect_refusal(
        stage,
        "SIGNATURE_INVALID",
        lambda: stage.bidder.submit_bid(tender_id, forged.envelope_path, wrong_signature),
    )

    _say("")
    _say("Alpha lowers its price and submits again; its first bid becomes REPLACED:")
    alpha_2 = _seal_with_sdk(stage, tender, "alpha", "alpha-2", "1190000.00", None)
    _submit(stage, tender_id, "Alpha (SDK, new price)", alpha_2, "alpha-2")

    _heading("4. The deadline passes")
    _wait_until(stage, deadline, "the deadline")
    late = _seal_with_sdk(stage, tender, "gamma", "gamma-late", "1100000.00", None)
    _say("Gamma tries again, too late:")
    _expect_refusal(
        stage,
        "BID_LATE",
        lambda: stage.bidder.submit_bid(tender_id, late.envelope_path, late.outer_signature_der),
    )
    _say("")
    _say("The operator tries to open before the opening time:")
    _expect_refusal(stage, "NOT_YET_OPEN", lambda: stage.operator.open_tender(tender_id))
    _say("(the service refuses before it touches the tender key on the token)")

    _heading("5. The opening")
    _wait_until(stage, opening_time, "the opening time")
    _say("The operator alone cannot open a quorum tender, even after the opening time:")
    _expect_refusal(stage, "QUORUM_NOT_MET", lambda: stage.operator.open_tender(tender_id))

    def officers_present() -> None:
        for name in ("officer-1", "officer-3"):
            presented = _present_share(stage, name, tender_id)
            _event(
                stage,
                f"{name} decrypted its share on its own machine and presented it"
                f" ({presented.presented} of {presented.threshold})",
            )

    _say("")
    _say("The opening room runs `sealed-bid console`; two officers present their shares")
    _say("and the operator presses `o` in the console:")
    screen = open_through_console(stage.operator, tender_id, before_open=officers_present)
    _say("")
    _say("What the console showed at the end:")
    print(screen.rstrip())
    record = stage.operator.get_record(tender_id)
    proof = json.loads(record.record_json)["time_proof"]
    _event(
        stage,
        f"opened: the TSA proved it is {proof['tsa_time']}, after the opening time; the"
        " shares rebuilt the PIN in memory and each content key was recovered on the"
        " tender's token",
    )
    print()
    print_record(record.record_json)
    print()
    _say(f"record sha256:    {record.record_sha256}")
    record_path = stage.settings.records_dir / f"{tender_id}.json"
    _say(f"record JSON:      {record_path}")
    opened = [row for row in json.loads(record.record_json)["bids"] if row["status"] == "OPENED"]
    if len(opened) != 3:
        raise DemoFailed(f"expected three opened bids, the record has {len(opened)}")

    _heading("6. Anyone can check a receipt offline")
    _verify_receipt_offline(stage, stage.receipts / "alpha-2.p7m")
    return record_path


def _cert_der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def _present_share(stage: _Stage, officer: str, tender_id: str) -> pb.PresentShareResponse:
    """What an officer does: fetch its encrypted share, decrypt it with its own key
    (locally), present it over mutual TLS with its own certificate."""
    client = stage.officers[officer]
    key = load_pem_private_key(stage.pki.officers[officer].key.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DemoFailed(f"{officer}'s dev key is not an RSA key")
    share = open_share(client.get_officer_share(tender_id).sealed_share, key)
    return client.present_share(tender_id, share)


def _seal_with_sdk(
    stage: _Stage,
    tender: pb.Tender,
    name: str,
    label: str,
    price: str,
    signing_time: datetime | None,
) -> SealedBid:
    files = stage.pki.bidders[name]
    work = stage.bids / label
    work.mkdir(parents=True, exist_ok=True)
    form = BidForm(
        tender_id=TenderId(tender.tender_id),
        bidder_name=files.company,
        price=Decimal(price),
        currency="CNY",
        duration_days=180,
        fields={"warranty_years": "3"},
    )
    document = work / "technical-proposal.txt"
    document.write_text(f"Technical proposal of {files.company}\n", encoding="utf-8")
    package = work / "package.zip"
    with package.open("wb") as dst:
        build_package(form, {document.name: document}, dst)
    sealed = seal_bid(
        package,
        load_signer(files.key, files.cert),
        tender.tender_certificate,
        work,
        oaep_hash=tender.algorithms.oaep_hashes[0],
        signing_time=signing_time,
    )
    (work / "bid.p7s").write_bytes(sealed.outer_signature_der)
    return sealed


def _submit(stage: _Stage, tender_id: str, who: str, sealed: SealedBid, label: str) -> pb.Receipt:
    result = stage.bidder.submit_bid(tender_id, sealed.envelope_path, sealed.outer_signature_der)
    receipt = result.receipt
    path = stage.receipts / f"{label}.p7m"
    path.write_bytes(receipt.signed_receipt)
    _event(
        stage,
        f"accepted: {who}, envelope {sealed.size} bytes sha256 {sealed.sha256[:16]}...; "
        f"receipt {path.name}, log seq {receipt.content.log_sequence}",
    )
    return receipt


def _seal_and_submit_with_openssl(
    stage: _Stage, tender_id: str, tender_pem: Path, oaep_hash: str
) -> None:
    """Delta uses no Sealed Bid code at all: the commands of docs/bid-format.md."""
    files = stage.pki.bidders["delta"]
    work = stage.bids / "delta-openssl"
    work.mkdir(parents=True, exist_ok=True)
    if shutil.which("openssl") is None:
        raise DemoFailed("the openssl command is not installed; Delta's bid needs it")
    form = {
        "format": "sealed-bid/bid-form/v1",
        "tender_id": tender_id,
        "bidder_name": files.company,
        "price": "1205000.00",
        "currency": "CNY",
        "duration_days": 200,
        "fields": {"warranty_years": "5"},
    }
    (work / "bid.json").write_text(json.dumps(form, indent=2) + "\n", encoding="utf-8")
    (work / "offer.txt").write_text(f"Offer of {files.company}\n", encoding="utf-8")
    shutil.copyfile(files.cert, work / "me.pem")
    shutil.copy2(files.key, work / "me.key")  # keeps the key file's 0600 mode
    shutil.copyfile(tender_pem, work / "tender.pem")
    _say("")
    _say("Delta uses only the openssl CLI (docs/bid-format.md), in " + str(work) + ":")
    python = Path(sys.executable).name
    commands: list[list[str]] = [
        [python, "-m", "zipfile", "-c", "package.zip", "bid.json", "offer.txt"],
        ["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
         "-in", "package.zip", "-signer", "me.pem", "-inkey", "me.key", "-out", "inner.p7s"],
        ["openssl", "cms", "-encrypt", "-binary", "-outform", "DER", "-aes-256-gcm",
         "-in", "inner.p7s", "-out", "bid.p7m", "-recip", "tender.pem",
         "-keyopt", "rsa_padding_mode:oaep", "-keyopt", f"rsa_oaep_md:{oaep_hash}"],
        ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
         "-in", "bid.p7m", "-signer", "me.pem", "-inkey", "me.key", "-out", "bid.p7s"],
    ]  # fmt: skip
    for argv in commands:
        _say(f"  $ {shlex.join(argv)}")
        _run_tool([sys.executable, *argv[1:]] if argv[0] == python else argv, work)
    envelope = work / "bid.p7m"
    result = stage.bidder.submit_bid(tender_id, envelope, (work / "bid.p7s").read_bytes())
    path = stage.receipts / "delta.p7m"
    path.write_bytes(result.receipt.signed_receipt)
    with envelope.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    _event(
        stage,
        f"accepted: Delta (openssl), envelope {envelope.stat().st_size} bytes sha256 "
        f"{digest[:16]}...; receipt {path.name}, log seq {result.receipt.content.log_sequence}",
    )


def _run_tool(argv: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=_OPENSSL_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise DemoFailed(f"{argv[0]} failed (exit {done.returncode}): {done.stderr.strip()}")


def _expect_refusal(stage: _Stage, code: str, action: Callable[[], object]) -> ServiceError:
    try:
        action()
    except ServiceError as exc:
        if exc.code != code:
            raise DemoFailed(
                f"expected {code}, the service said {exc.code}: {exc.message}"
            ) from exc
        _event(stage, f"refused: {refusal_text(exc)}")
        return exc
    raise DemoFailed(f"expected the service to refuse with {code}, but it accepted")


def _verify_receipt_offline(stage: _Stage, path: Path) -> None:
    root = x509.load_pem_x509_certificate(stage.pki.platform_root.cert.read_bytes())
    verified = verify_receipt(path.read_bytes(), root.public_bytes(serialization.Encoding.DER))
    content = verified.content
    _say(f"receipt:          {path}")
    _say(f"checked against:  {stage.pki.platform_root.cert} (the platform root only)")
    _say(f"signed by:        {verified.signer_subject}")
    _say(f"kind:             {content.kind}")
    _say(f"tender / bid:     {content.tender_id} / {content.bid_id}")
    _say(f"envelope:         {content.size} bytes, sha256 {content.envelope_sha256}")
    _say(f"received at:      {content.received_at.isoformat()} (log seq {content.log_sequence})")
    _say("valid: the service cannot later deny having received this envelope.")


def _wait_until(stage: _Stage, when: datetime, what: str) -> None:
    seconds = (when - datetime.now(UTC)).total_seconds() + _MARGIN_SECONDS
    if seconds > 0:
        _event(stage, f"waiting {seconds:.1f} s for {what} ({when:%H:%M:%S} UTC)...")
        time.sleep(seconds)
    _event(stage, f"{what} has passed")


def _heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 74 - len(title)), flush=True)


def _say(text: str) -> None:
    print(f"  {text}" if text else "", flush=True)


def _event(stage: _Stage, text: str) -> None:
    print(f"  [{time.monotonic() - stage.started:5.1f}s] {text}", flush=True)
