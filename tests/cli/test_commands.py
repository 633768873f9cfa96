"""The CLI path from a bid form to a submitted envelope, and "no early opening" through
the CLI, against ``sealed-bid serve`` in a subprocess."""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import ServedCli, iso, require_ok, run_cli

_ids = itertools.count(1)


def _form(tender_id: str, price: str = "1234567.89") -> str:
    return json.dumps(
        {
            "format": "sealed-bid/bid-form/v1",
            "tender_id": tender_id,
            "bidder_name": "Alpha Construction Co., Ltd.",
            "price": price,
            "currency": "EUR",
            "duration_days": 180,
            "fields": {"lot": "2"},
        }
    )


def _new_tender(served: ServedCli) -> str:
    tender_id = f"CLI-{next(_ids):03d}"
    now = datetime.now(UTC)
    require_ok(
        served.run(
            "tender",
            "create",
            "--id",
            tender_id,
            "--title",
            "Bridge repair",
            "--deadline",
            iso(now + timedelta(hours=1)),
            "--opening-time",
            iso(now + timedelta(hours=2)),
        )
    )
    return tender_id


def _package_and_seal(served: ServedCli, tender_id: str, work: Path) -> Path:
    """bid package -> tender show --cert-out -> bid seal, as a CLI user does; returns the
    directory holding bid.p7m and bid.p7s."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "bid.json").write_text(_form(tender_id), encoding="utf-8")
    (work / "offer.pdf").write_bytes(b"%PDF-1.4 the offer\n")
    (work / "annex.txt").write_text("Annex A\n", encoding="utf-8")
    require_ok(
        run_cli(
            "bid", "package", "--form", work / "bid.json",
            "--doc", work / "offer.pdf", "--doc", work / "annex.txt",
            "--out", work / "package.zip",
        )
    )  # fmt: skip
    shown = json.loads(
        require_ok(served.run("tender", "show", tender_id, "--cert-out", work / "tender.pem"))
    )
    assert shown["tender_id"] == tender_id
    alpha = served.pki / "bidders" / "alpha"
    require_ok(
        run_cli(
            "bid", "seal", "--package", work / "package.zip",
            "--tender-cert", work / "tender.pem",
            "--key", alpha / "key.pem", "--cert", alpha / "cert.pem",
            "--oaep-hash", shown["oaep_hashes"][0],
            "--out", work / "sealed",
        )
    )  # fmt: skip
    return work / "sealed"


@pytest.mark.server
@pytest.mark.token
@pytest.mark.openssl
def test_bid_package_seal_and_tender_show_make_an_envelope_to_the_tender_with_oaep(
    served_cli: ServedCli, tmp_path: Path
) -> None:
    tender_id = _new_tender(served_cli)
    sealed = _package_and_seal(served_cli, tender_id, tmp_path)
    with zipfile.ZipFile(tmp_path / "package.zip") as archive:
        assert archive.namelist() == ["bid.json", "offer.pdf", "annex.txt"]
        assert json.loads(archive.read("bid.json"))["tender_id"] == tender_id
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl CLI is required"
    printed = subprocess.run(
        [openssl, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sealed / "bid.p7m"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert "rsaesOaep" in printed.stdout
    assert "aes-256-gcm" in printed.stdout
    assert (sealed / "bid.p7s").stat().st_size > 0


@pytest.mark.server
@pytest.mark.token
def test_open_before_the_opening_time_is_refused_by_the_cli_and_uses_no_key(
    served_cli: ServedCli, tmp_path: Path
) -> None:
    tender_id = _new_tender(served_cli)
    sealed = _package_and_seal(served_cli, tender_id, tmp_path)
    submitted = served_cli.run(
        "bid", "submit", "--tender", tender_id,
        "--envelope", sealed / "bid.p7m", "--signature", sealed / "bid.p7s",
        "--receipt-out", tmp_path / "receipt.p7m",
    )  # fmt: skip
    assert "accepted bid" in require_ok(submitted)

    refused = served_cli.run("open", tender_id)

    assert refused.returncode == 2
    assert "refused: NOT_YET_OPEN (FAILED_PRECONDITION)" in refused.stderr
    assert refused.stdout == ""
    with sqlite3.connect(f"file:{served_cli.database}?mode=ro", uri=True) as db:
        key_uses = db.execute("SELECT count(*) FROM key_uses").fetchone()[0]
        events = [row[0] for row in db.execute("SELECT event FROM audit_entries")]
    assert key_uses == 0
    assert "key.used" not in events
    assert "tender.opened" not in events
    assert "bid.accepted" in events  # the journal is being written: the check is not vacuous


def test_bid_package_refuses_a_form_with_a_numeric_price(tmp_path: Path) -> None:
    form = json.loads(_form("T-1"))
    form["price"] = 1000.5
    (tmp_path / "bid.json").write_text(json.dumps(form), encoding="utf-8")
    result = run_cli("bid", "package", "--form", tmp_path / "bid.json", "--out", tmp_path / "p.zip")
    assert result.returncode == 2
    assert "MALFORMED_PACKAGE" in result.stderr
    assert "price" in result.stderr
    assert not (tmp_path / "p.zip").exists()


def test_bid_package_refuses_two_documents_with_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "bid.json").write_text(_form("T-1"), encoding="utf-8")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "offer.pdf").write_bytes(b"%PDF")
    result = run_cli(
        "bid", "package", "--form", tmp_path / "bid.json",
        "--doc", tmp_path / "a" / "offer.pdf", "--doc", tmp_path / "b" / "offer.pdf",
        "--out", tmp_path / "p.zip",
    )  # fmt: skip
    assert result.returncode != 0
    assert "offer.pdf" in result.stderr
    assert not (tmp_path / "p.zip").exists()
