"""``sealed-bid demo`` end to end, and ``sealed-bid receipt verify`` on what it leaves."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealed_bid.domain.receipt import ReceiptContent
from tests.cli.conftest import require_ok, run_cli

pytestmark = [pytest.mark.server, pytest.mark.token, pytest.mark.openssl]

GOOD_BIDDERS = (
    "Alpha Construction Co., Ltd.",
    "Beta Engineering Co., Ltd.",
    "Delta Road Works Co., Ltd.",
)


@dataclass(frozen=True)
class DemoRun:
    result: subprocess.CompletedProcess[str]
    directory: Path

    @property
    def platform_root(self) -> Path:
        return self.directory / "state" / "pki" / "platform" / "dev-platform-root.pem"

    @property
    def receipts(self) -> Path:
        return self.directory / "receipts"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    directory = tmp_path_factory.mktemp("demo") / "kept"
    result = run_cli("demo", "--keep", directory, timeout=120)
    return DemoRun(result, directory)


def test_demo_opens_the_three_good_bids_and_shows_every_refusal(demo: DemoRun) -> None:
    out = require_ok(demo.result)
    table = out.split("Opening record for", 1)[1]
    opened = [line for line in table.splitlines() if line.rstrip().endswith("OPENED")]
    assert len(opened) == 3
    for company in GOOD_BIDDERS:
        assert any(company in line for line in opened), company
    not_opened = {
        line.split()[-1] for line in table.splitlines() if line.strip().startswith("bid-")
    }
    assert not_opened == {"REPLACED", "WITHDRAWN"}
    for code in ("SIGNATURE_INVALID", "BID_LATE", "NOT_YET_OPEN", "QUORUM_NOT_MET"):
        assert f"refused: {code}" in out, code
    assert "openssl cms -encrypt" in out
    # The quorum opening, driven through the console, whose final screen is printed.
    console = out.split("What the console showed at the end:", 1)[1].split("Opening record for")[0]
    assert "opening time proven by the TSA" in console
    assert "share presented by officer 3" in console
    assert console.count(": OPENED") == 3
    assert "opening finished: record sha256" in console
    assert "presented it (2 of 2)" in out
    assert "signed by:        CN=platform-receipt" in out


def test_demo_leaves_its_record_and_receipts_when_kept(demo: DemoRun) -> None:
    require_ok(demo.result)
    records = list((demo.directory / "state" / "records").glob("DEMO-*.json"))
    assert len(records) == 1
    assert str(records[0]) in demo.result.stdout
    assert (demo.receipts / "alpha-2.p7m").is_file()


def test_demo_never_prints_the_token_pin(demo: DemoRun) -> None:
    pin = (demo.directory / "state" / "secrets" / "token-pin").read_text().strip()
    assert len(pin) >= 4
    assert pin not in demo.result.stdout
    assert pin not in demo.result.stderr


def test_demo_refuses_a_keep_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    result = run_cli("demo", "--keep", tmp_path)
    assert result.returncode == 2
    assert "not empty" in result.stderr


def test_receipt_verify_accepts_a_receipt_from_the_demo(demo: DemoRun) -> None:
    require_ok(demo.result)
    out = require_ok(
        run_cli(
            "receipt",
            "verify",
            demo.receipts / "alpha-2.p7m",
            "--platform-root",
            demo.platform_root,
        )
    )
    assert "valid receipt signed by CN=platform-receipt" in out
    assert '"kind": "bid"' in out


def test_receipt_verify_refuses_a_tampered_receipt(demo: DemoRun, tmp_path: Path) -> None:
    require_ok(demo.result)
    original = (demo.receipts / "alpha-2.p7m").read_bytes()
    content = ReceiptContent.from_bytes(_content_of(original))
    bid_id = content.bid_id.encode()
    assert original.count(bid_id) == 1
    changed = bid_id[:-1] + (b"0" if bid_id[-1:] != b"0" else b"1")
    tampered = tmp_path / "tampered.p7m"
    tampered.write_bytes(original.replace(bid_id, changed))
    result = run_cli("receipt", "verify", tampered, "--platform-root", demo.platform_root)
    assert result.returncode != 0
    assert "RECEIPT_INVALID" in result.stderr
    assert "does not verify" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _content_of(receipt_der: bytes) -> bytes:
    from sealed_bid.crypto.signed_data import verify_attached

    return verify_attached(receipt_der)[1]
