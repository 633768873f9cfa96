"""docs/receipts.md promises that a receipt verifies with nothing but the openssl CLI and
the platform root, and with `sealed-bid receipt verify`. These tests run exactly the
documented commands against receipts from the real service."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from sealed_bid.cli.main import main as cli_main
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.devpki import load_signer
from sealed_bid.domain.ids import BidId, TenderId
from sealed_bid.domain.withdrawal import WithdrawalStatement
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token, pytest.mark.openssl]


def _openssl_verify(receipt: Path, root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # The command of docs/receipts.md, word for word (plus -in/-out).
    return subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            str(receipt),
            "-CAfile",
            str(root),
            "-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _submitted_receipt(service: Service, tmp_path: Path, bidder: str) -> tuple[Path, dict]:
    tender = new_tender(service)
    sealed = seal_for(service, tender, bidder, tmp_path / "bid")
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    receipt = tmp_path / "receipt.p7m"
    receipt.write_bytes(result.receipt.signed_receipt)
    c = result.receipt.content
    expected = {
        "kind": c.kind,
        "tender_id": c.tender_id,
        "bid_id": c.bid_id,
        "envelope_sha256": c.envelope_sha256,
        "size": c.size,
        "log_sequence": c.log_sequence,
    }
    return receipt, expected


def test_a_bid_receipt_verifies_with_openssl_and_the_platform_root(
    service: Service, tmp_path: Path
) -> None:
    receipt, expected = _submitted_receipt(service, tmp_path, "gamma")
    content = tmp_path / "receipt.json"

    done = _openssl_verify(receipt, service.pki.platform_root.cert, content)

    assert done.returncode == 0, done.stderr
    assert "Verification successful" in done.stderr
    data = json.loads(content.read_bytes())
    assert data["format"] == "sealed-bid/receipt/v1"
    assert {k: data[k] for k in expected} == expected
    # The signed bytes are the canonical JSON: sorted keys, no white space.
    assert content.read_bytes() == json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_a_tampered_receipt_fails_openssl_verification(service: Service, tmp_path: Path) -> None:
    receipt, expected = _submitted_receipt(service, tmp_path, "delta")
    der = bytearray(receipt.read_bytes())
    at = bytes(der).index(expected["bid_id"].encode())
    der[at] ^= 0x01  # one bit of the signed content
    receipt.write_bytes(bytes(der))

    done = _openssl_verify(receipt, service.pki.platform_root.cert, tmp_path / "out.json")

    assert done.returncode != 0


def test_a_receipt_does_not_verify_against_another_root(service: Service, tmp_path: Path) -> None:
    receipt, _ = _submitted_receipt(service, tmp_path, "alpha")
    # The bidder CA's root is a real CA, just not the platform's.
    done = _openssl_verify(receipt, service.pki.bidder_root.cert, tmp_path / "out.json")

    assert done.returncode != 0


def test_sealed_bid_receipt_verify_accepts_a_bid_receipt(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt, expected = _submitted_receipt(service, tmp_path, "beta")

    code = cli_main(
        ["receipt", "verify", str(receipt), "--platform-root", str(service.pki.platform_root.cert)]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert expected["bid_id"] in out
    assert "valid receipt signed by" in out


def test_a_withdrawal_receipt_verifies_with_openssl(service: Service, tmp_path: Path) -> None:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "alpha", tmp_path / "bid")
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    service.clock.advance(timedelta(seconds=2))
    try:
        statement = WithdrawalStatement(
            TenderId(tender.tender_id), BidId(result.receipt.content.bid_id)
        ).to_bytes()
        signer = load_signer(service.pki.bidders["alpha"])
        withdrawal = service.bidder.withdraw_bid(
            sign_attached(signer, statement, service.clock.now())
        )
    finally:
        service.clock.advance(-timedelta(seconds=2))
    receipt = tmp_path / "withdrawal.p7m"
    receipt.write_bytes(withdrawal.signed_receipt)
    content = tmp_path / "withdrawal.json"

    done = _openssl_verify(receipt, service.pki.platform_root.cert, content)

    assert done.returncode == 0, done.stderr
    data = json.loads(content.read_bytes())
    assert data["kind"] == "withdrawal"
    assert data["bid_id"] == result.receipt.content.bid_id
    assert data["envelope_sha256"] == sealed.sha256
    assert data["log_sequence"] > result.receipt.content.log_sequence
