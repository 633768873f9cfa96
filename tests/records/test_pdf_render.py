"""The opening record rendered as a PDF: deterministic, readable in Chinese and Latin,
the record JSON attached byte for byte, unknown fields shown without code changes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from sealed_bid.records.pdf_render import ATTACHMENT_NAME, render_record_pdf
from tests.records.conftest import GENERATED_AT, attached_files, pdf_pages_text


def _all_text(pdf: bytes) -> str:
    """Every page's text with line breaks removed (wrapped lines joined again)."""
    return "".join(page.replace("\n", "") for page in pdf_pages_text(pdf))


def test_same_record_and_time_give_the_same_bytes(record_json: str, record_pdf: bytes) -> None:
    assert render_record_pdf(record_json, generated_at=GENERATED_AT) == record_pdf
    later = render_record_pdf(record_json, generated_at=GENERATED_AT + timedelta(seconds=1))
    assert later != record_pdf


def test_the_document_dates_are_the_generation_time(record_pdf: bytes) -> None:
    assert b"/CreationDate (D:20261125170000+00'00')" in record_pdf
    assert b"/ModDate (D:20261125170000+00'00')" in record_pdf


def test_the_exact_record_json_is_attached(record_json: str, record_pdf: bytes) -> None:
    assert attached_files(record_pdf) == {ATTACHMENT_NAME: record_json.encode("utf-8")}


def test_the_first_page_shows_the_record_sha256(record_json: str, record_pdf: bytes) -> None:
    digest = hashlib.sha256(record_json.encode("utf-8")).hexdigest()
    first_page = pdf_pages_text(record_pdf)[0]
    assert digest in first_page.splitlines()


def test_mixed_chinese_and_latin_text_is_set_in_the_cid_font(record_pdf: bytes) -> None:
    assert b"/BaseFont /STSong-Light" in record_pdf
    assert b"/Encoding /UniGB-UCS2-H" in record_pdf
    text = _all_text(record_pdf)
    assert "开标记录" in text
    assert "开封市道路工程 Road works, lot 1" in text
    assert "开封阿尔法建设有限公司" in text
    assert "技术标.pdf" in text
    assert "含税 incl. VAT" in text


def test_every_bid_row_and_replaced_envelope_is_shown(record_pdf: bytes) -> None:
    text = _all_text(record_pdf)
    for expected in (
        "T-2026-001",
        "bid-9fc80b5752669f906a949593",
        "OPENED",
        "Alpha Construction Co., Ltd.",
        "91410200MA00000013",
        "1234567.89",
        "CNY",
        "180",
        "37dd780d" * 8,
        "38cbd48c" * 8,
        "01ebe741" * 8,
        "bid-2",
        "DECRYPTION_FAILED",
        "the AES-GCM tag did not verify",
        "bid-0",
        "REPLACED",
        "c" * 64,
        "2026-11-25T16:08:44.594873Z",
    ):
        assert expected in text, expected


def test_unknown_top_level_fields_are_rendered_generically(record_json: str) -> None:
    record = json.loads(record_json)
    record["officers_present"] = [
        {"name": "张三", "role": "主持人"},
        {"name": "Li Si", "role": "supervisor"},
    ]
    record["key_destruction"] = {"destroyed_at": "2026-11-25T17:00:00.000000Z", "ok": True}
    record["objections"] = []
    extended = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    text = _all_text(render_record_pdf(extended, generated_at=GENERATED_AT))
    for expected in (
        "officers_present",
        "张三",
        "主持人",
        "supervisor",
        "key_destruction",
        "destroyed_at",
        "2026-11-25T17:00:00.000000Z",
        "true",
        "objections",
    ):
        assert expected in text, expected


def test_long_records_flow_onto_further_pages(record_json: str) -> None:
    record = json.loads(record_json)
    row = record["bids"][0]
    record["bids"] = [{**row, "bid_id": f"bid-{n:04d}"} for n in range(40)]
    text = render_record_pdf(json.dumps(record, ensure_ascii=False), generated_at=GENERATED_AT)
    pages = pdf_pages_text(text)
    assert len(pages) > 5
    assert all(f"page {n}" in page for n, page in enumerate(pages, 1))
    assert "bid-0039" in "".join(p.replace("\n", "") for p in pages)


@pytest.mark.parametrize("not_an_object", ["[]", '"record"', "null"])
def test_a_record_that_is_not_a_json_object_is_refused(not_an_object: str) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        render_record_pdf(not_an_object, generated_at=datetime.now(UTC))


def test_a_naive_generation_time_is_refused(record_json: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_record_pdf(record_json, generated_at=datetime(2026, 11, 25, 17, 0))
