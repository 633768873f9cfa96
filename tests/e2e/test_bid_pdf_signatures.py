"""PDF documents inside a bid package carry their own signatures (PAdES); the opening
validates each with pyhanko against the tender's bidder CAs and shows the result in the
record, next to the document's digest."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from sealed_bid.cli.common import load_signer
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import seal_bid
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import TenderId
from tests.e2e.conftest import Service, new_tender
from tests.records.test_bid_pdfs import _document, _sign

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]


def test_the_record_shows_each_pdf_signature_as_validated_at_the_opening(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service, deadline_in=timedelta(minutes=5))
    alpha = service.pki.bidders["alpha"]
    signed = tmp_path / "offer.pdf"
    signed.write_bytes(_sign(_document("Priced offer, lot 1"), alpha))
    by_rogue = tmp_path / "rogue.pdf"
    by_rogue.write_bytes(
        _sign(_document("Not from a trusted CA"), service.pki.bidders["untrusted"])
    )
    unsigned = tmp_path / "drawings.pdf"
    unsigned.write_bytes(_document("Drawings"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a PDF", encoding="utf-8")
    form = BidForm(
        tender_id=TenderId(tender.tender_id),
        bidder_name=alpha.company,
        price=Decimal("1000000.00"),
        currency="CNY",
        duration_days=120,
        fields={},
    )
    package = tmp_path / "package.zip"
    with package.open("wb") as f:
        build_package(
            form,
            {
                "offer.pdf": signed,
                "rogue.pdf": by_rogue,
                "drawings.pdf": unsigned,
                "notes.txt": notes,
            },
            f,
        )
    sealed = seal_bid(
        package,
        load_signer(alpha.key, alpha.cert),
        tender.tender_certificate,
        tmp_path,
        oaep_hash="sha1",
        signing_time=service.clock.now(),
    )
    service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, sealed.outer_signature_der)
    service.clock.set(tender.opening_time.ToDatetime().replace(tzinfo=service.clock.now().tzinfo))
    record = json.loads(service.operator.open_tender(tender.tender_id).record_json)
    (row,) = record["bids"]
    assert row["status"] == "OPENED"
    documents = {d["name"]: d for d in row["documents"]}
    (offer,) = documents["offer.pdf"]["signatures"]
    assert (offer["status"], offer["intact"], offer["valid"], offer["trusted"]) == (
        "trusted",
        True,
        True,
        True,
    )
    assert offer["pades"] is True
    assert offer["signer_organisation"] == alpha.company
    (rogue,) = documents["rogue.pdf"]["signatures"]
    assert (rogue["status"], rogue["intact"], rogue["trusted"]) == ("untrusted", True, False)
    assert documents["drawings.pdf"]["signatures"] == []
    assert documents["notes.txt"]["signatures"] is None
    # The plaintext documents were extracted only while they were checked.
    work = service.settings.work_dir / "opening" / tender.tender_id
    assert not any(p.is_file() for p in work.rglob("*"))
