"""An opening killed half way (kill -9 of the service) resumes where it stopped: the bids it
finished keep their rows and are not decrypted again, the rest open, and there is one
record, which lists the interrupted attempt.

This test runs the real `sealed-bid serve` in a child process with a state directory (and
SoftHSM2 token) of its own, and a real TSA on 127.0.0.1 with the real clock, so it waits
for a real deadline (about 20 s)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from sealed_bid.cli.common import load_signer
from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.devpki import GOOD_BIDDERS, load_dev_pki
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import TenderId
from sealed_bid.timestamping.dev_tsa import DevTsaServer, load_dev_tsa, load_dev_tsa_signer

pytestmark = [pytest.mark.token, pytest.mark.server]

REPO = Path(__file__).resolve().parents[2]
DOCUMENT_BYTES = 24 * 1024 * 1024
"""Large enough that opening one bid takes a noticeable moment, so the kill lands between
the first finished bid and the last."""
_SERVING = re.compile(r"serving: public 127\.0\.0\.1:(\d+), operator (\d+)")


@dataclass
class Child:
    process: subprocess.Popen[str]
    public: int
    operator: int


def _env(state: Path, tsa_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALED_BID_")}
    env.pop("SOFTHSM2_CONF", None)  # the child uses its own state directory's token
    env |= {
        "PYTHONPATH": str(REPO),
        "SEALED_BID_STATE_DIR": str(state),
        "SEALED_BID_PUBLIC_LISTEN": "127.0.0.1:0",
        "SEALED_BID_OPERATOR_LISTEN": "127.0.0.1:0",
        "SEALED_BID_AUTHORITY_LISTEN": "",
        "SEALED_BID_TSA_URL": tsa_url,
    }
    return env


def _start(state: Path, tsa_url: str) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", "sealed_bid.cli.main", "serve"],
        env=_env(state, tsa_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = _SERVING.search(line)
    assert match, f"the service did not start: {line!r}"
    return Child(process, int(match.group(1)), int(match.group(2)))


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("resume-state")
    subprocess.run(
        [sys.executable, "-m", "sealed_bid.cli.main", "init"],
        env=_env(state, ""),
        check=True,
        capture_output=True,
        timeout=300,
        cwd=REPO,
    )
    return state


@pytest.fixture(scope="module")
def tsa(state: Path) -> Iterator[DevTsaServer]:
    with DevTsaServer(load_dev_tsa_signer(load_dev_tsa(state / "pki" / "tsa"))) as server:
        yield server


def _sealed_bids(
    state: Path, tender_certificate: bytes, tender_id: str, work: Path
) -> list[SealedBid]:
    pki = load_dev_pki(state / "pki")
    sealed = []
    for name in GOOD_BIDDERS:
        files = pki.bidders[name]
        folder = work / name
        folder.mkdir(parents=True)
        document = folder / "drawings.bin"
        document.write_bytes(os.urandom(DOCUMENT_BYTES))
        form = BidForm(
            tender_id=TenderId(tender_id),
            bidder_name=files.company,
            price=Decimal("1000.00"),
            currency="CNY",
            duration_days=90,
            fields={},
        )
        package = folder / "package.zip"
        with package.open("wb") as f:
            build_package(form, {"drawings.bin": document}, f)
        document.unlink()
        sealed.append(
            seal_bid(
                package,
                load_signer(files.key, files.cert),
                tender_certificate,
                folder,
                oaep_hash="sha1",
                signing_time=datetime.now(UTC),
            )
        )
        package.unlink()
    return sealed


def _rows(state: Path, tender_id: str) -> int:
    with sqlite3.connect(f"file:{state / 'sealed-bid.db'}?mode=ro", uri=True, timeout=5) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM opening_rows WHERE tender_id = ?", (tender_id,)
        ).fetchone()
    return int(count)


def _decrypt_uses(state: Path, tender_id: str) -> dict[str, int]:
    with sqlite3.connect(f"file:{state / 'sealed-bid.db'}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute(
            "SELECT bid_id, count(*) FROM key_uses WHERE tender_id = ? AND operation ="
            " 'decrypt_key' GROUP BY bid_id",
            (tender_id,),
        ).fetchall()
    return {bid: int(n) for bid, n in rows}


def test_a_killed_opening_resumes_to_one_consistent_record(
    state: Path, tsa: DevTsaServer, tmp_path: Path
) -> None:
    pki = load_dev_pki(state / "pki")
    root = pki.platform_root.cert.read_bytes()
    operator_key, operator_cert = pki.operator.key.read_bytes(), pki.operator.cert.read_bytes()
    child = _start(state, tsa.url)
    try:
        operator = SealedBidClient(f"127.0.0.1:{child.operator}", root, operator_key, operator_cert)
        bidder = SealedBidClient(f"127.0.0.1:{child.public}", root)
        now = datetime.now(UTC)
        tender_id = f"RESUME-{now:%H%M%S}"
        deadline = now + timedelta(seconds=20)
        tender = operator.create_tender(
            tender_id, "Resumable opening", deadline, deadline, ["dev-bidder-ca"]
        )
        bids = _sealed_bids(state, tender.tender_certificate, tender_id, tmp_path)
        ids = [
            bidder.submit_bid(
                tender_id, s.envelope_path, s.outer_signature_der
            ).receipt.content.bid_id
            for s in bids
        ]
        time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)

        failure: list[BaseException] = []

        def open_in_background() -> None:
            try:
                operator.open_tender(tender_id)
            except ServiceError as exc:
                failure.append(exc)

        opener = threading.Thread(target=open_in_background)
        opener.start()
        give_up = time.monotonic() + 120
        while _rows(state, tender_id) == 0 and time.monotonic() < give_up:
            time.sleep(0.005)
        child.process.send_signal(signal.SIGKILL)
        child.process.wait(timeout=30)
        finished_before_kill = _rows(state, tender_id)
        opener.join(timeout=60)
        operator.close()
        bidder.close()
        assert 1 <= finished_before_kill < len(ids), "the kill did not land mid-opening"
        assert failure, "the opening call should have failed with the service killed"
        uses_before = _decrypt_uses(state, tender_id)

        child = _start(state, tsa.url)
        with SealedBidClient(
            f"127.0.0.1:{child.operator}", root, operator_key, operator_cert
        ) as operator:
            record = json.loads(operator.open_tender(tender_id).record_json)
        assert [(r["bid_id"], r["status"]) for r in record["bids"]] == [
            (bid, "OPENED") for bid in ids
        ]
        assert [a["outcome"] for a in record["attempts"]] == ["interrupted", "completed"]
        assert _rows(state, tender_id) == len(ids)
        uses_after = _decrypt_uses(state, tender_id)
        with sqlite3.connect(f"file:{state / 'sealed-bid.db'}?mode=ro", uri=True) as db:
            kept = {
                bid
                for (bid,) in db.execute(
                    "SELECT bid_id FROM opening_rows WHERE proof_id = (SELECT min(id) FROM"
                    " opening_proofs WHERE tender_id = ?)",
                    (tender_id,),
                )
            }
            (records,) = db.execute(
                "SELECT count(*) FROM opening_records WHERE tender_id = ?", (tender_id,)
            ).fetchone()
        assert records == 1
        assert len(kept) == finished_before_kill
        for bid in kept:
            # Finished before the kill: not decrypted again by the resumed opening.
            assert uses_after[bid] == uses_before[bid] == 1
    finally:
        child.process.kill()
        child.process.wait(timeout=30)
