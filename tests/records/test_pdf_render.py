"""The opening record rendered as a PDF: deterministic, readable in Chinese and Latin
(Chinese in an embedded subset of a CJK TrueType font), the record JSON attached byte for
byte, unknown fields shown without code changes."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from sealed_bid.records import pdf_render
from sealed_bid.records.pdf_render import ATTACHMENT_NAME, render_record_pdf
from tests.records.conftest import GENERATED_AT, attached_files

_INSTALLED_CJK_FONT = next((p for p, _ in pdf_render.CJK_FONT_FILES if Path(p).is_file()), None)
needs_cjk_font = pytest.mark.skipif(
    _INSTALLED_CJK_FONT is None,
    reason="no CJK TrueType font of pdf_render.CJK_FONT_FILES is installed "
    "(scripts/setup installs fonts-wqy-microhei)",
)

_TEXT_OPS = re.compile(rb"/([^\s/]+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\) Tj", re.DOTALL)
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(literal):
        char = literal[i : i + 1]
        if char != b"\\":
            out += char
            i += 1
            continue
        octal = re.match(rb"[0-7]{1,3}", literal[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(0), 8) & 0xFF)
            i += 1 + len(octal.group(0))
        else:
            nxt = literal[i + 1 : i + 2]
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def _decoder(font: Any) -> Any:
    """How a shown string of ``font`` becomes text, as a text extractor does it: through
    the font's /ToUnicode CMap (one-byte codes, reportlab's TrueType subsets), as UCS-2
    for a Type0 CID font without one (STSong-Light, UniGB-UCS2-H), else as WinAnsi."""
    if "/ToUnicode" in font:
        cmap = font["/ToUnicode"].get_object().data
        section = cmap.split(b"beginbfchar", 1)[1].split(b"endbfchar", 1)[0]
        mapping = {
            int(code, 16): bytes.fromhex(target.decode()).decode("utf-16-be")
            for code, target in _BFCHAR.findall(section)
        }
        return lambda raw: "".join(mapping.get(byte, "\ufffd") for byte in raw)
    if str(font["/Subtype"]) == "/Type0":
        return lambda raw: raw.decode("utf-16-be")
    return lambda raw: raw.decode("cp1252")


def _pages(pdf: bytes) -> Iterator[Any]:
    reader = PdfFileReader(io.BytesIO(pdf))
    for page_ref in reader.root["/Pages"]["/Kids"]:
        yield page_ref.get_object()


def _fonts(pdf: bytes) -> dict[str, Any]:
    """Every font the pages use, by resource name."""
    return {
        str(name)[1:]: font.get_object()
        for page in _pages(pdf)
        for name, font in page["/Resources"]["/Font"].items()
    }


def _pages_text(pdf: bytes) -> list[str]:
    """The text each page shows, one shown string per line, decoded as a PDF text
    extractor would (``_decoder``). Enough to check what the renderer put on the page
    without a PDF text extractor installed."""
    pages: list[str] = []
    for page in _pages(pdf):
        decoders = {
            str(name)[1:]: _decoder(font.get_object())
            for name, font in page["/Resources"]["/Font"].items()
        }
        content = page["/Contents"].get_object().data
        decode, lines = None, []
        for match in _TEXT_OPS.finditer(content):
            if match.group(1) is not None:
                decode = decoders[match.group(1).decode("ascii")]
                continue
            assert decode is not None, "text shown before any font was set"
            lines.append(decode(_unescape(match.group(2))))
        pages.append("\n".join(lines))
    return pages


def _all_text(pdf: bytes) -> str:
    """Every page's text with line breaks removed (wrapped lines joined again)."""
    return "".join(page.replace("\n", "") for page in _pages_text(pdf))


def _with_bidder(record_json: str, organisation: str) -> str:
    record = json.loads(record_json)
    record["bids"][0]["bidder"]["organisation"] = organisation
    record["bids"][0]["form"]["bidder_name"] = organisation
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _sfnt_tables(font_file: bytes) -> set[str]:
    """The table tags of a TrueType font file (its table directory)."""
    count = int.from_bytes(font_file[4:6], "big")
    return {font_file[12 + 16 * i : 16 + 16 * i].decode("ascii") for i in range(count)}


@pytest.fixture
def font_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Replace ``CJK_FONT_FILES`` (call the result with the new list); the font is loaded
    again from it, and again from the real list afterwards."""

    def use(files: tuple[tuple[str, int], ...]) -> None:
        monkeypatch.setattr(pdf_render, "CJK_FONT_FILES", files)
        pdf_render._load_cjk_font.cache_clear()

    yield use
    pdf_render._load_cjk_font.cache_clear()


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
    first_page = _pages_text(record_pdf)[0]
    assert digest in first_page.splitlines()


def test_mixed_chinese_and_latin_text_is_shown(record_pdf: bytes) -> None:
    text = _all_text(record_pdf)
    assert "开标记录" in text
    assert "开封市道路工程 Road works, lot 1" in text
    assert "开封阿尔法建设有限公司" in text
    assert "技术标.pdf" in text
    assert "含税 incl. VAT" in text


@needs_cjk_font
def test_chinese_is_set_in_an_embedded_subset_of_a_truetype_font(record_json: str) -> None:
    name = "郑州路桥建设有限公司"
    pdf = render_record_pdf(_with_bidder(record_json, name), generated_at=GENERATED_AT)

    embedded = [f for f in _fonts(pdf).values() if str(f["/Subtype"]) == "/TrueType"]
    assert embedded, "no TrueType font in the PDF"
    for font in embedded:
        # A subset: the six-letter tag before the font's PostScript name.
        assert re.fullmatch(r"/[A-Z]{6}\+\S+", str(font["/BaseFont"])), font["/BaseFont"]
        font_file = font["/FontDescriptor"]["/FontFile2"].get_object().data
        assert font_file[:4] == b"\x00\x01\x00\x00"  # TrueType outlines
        assert {"glyf", "loca", "cmap"} <= _sfnt_tables(font_file)
        # Only the glyphs used: a few kB, not the whole font (MBs).
        assert len(font_file) < Path(str(_INSTALLED_CJK_FONT)).stat().st_size / 20
    assert b"STSong-Light" not in pdf  # every character here is in the embedded font

    text = _all_text(pdf)
    for expected in (name, "开标记录", "开封市道路工程 Road works, lot 1", "技术标.pdf"):
        assert expected in text, expected


@needs_cjk_font
def test_characters_the_embedded_font_lacks_keep_their_text_in_stsong_light(
    record_json: str,
) -> None:
    rare = "\u3400"  # CJK Extension A, not in WenQuanYi Micro Hei
    name = f"郑州{rare}路桥有限公司"
    pdf = render_record_pdf(_with_bidder(record_json, name), generated_at=GENERATED_AT)
    subtypes = {str(font["/Subtype"]) for font in _fonts(pdf).values()}
    assert {"/TrueType", "/Type0"} <= subtypes
    assert b"/BaseFont /STSong-Light" in pdf
    assert name in _all_text(pdf)


def test_without_a_cjk_font_file_it_falls_back_to_stsong_light_with_one_warning(
    record_json: str, font_files: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "damaged.ttc"
    damaged.write_bytes(b"not a font")
    font_files(((str(damaged), 0), (str(tmp_path / "missing.ttf"), 0)))
    name = "郑州路桥建设有限公司"
    with caplog.at_level(logging.WARNING, logger="sealed_bid.records"):
        pdf = render_record_pdf(_with_bidder(record_json, name), generated_at=GENERATED_AT)
        again = render_record_pdf(_with_bidder(record_json, name), generated_at=GENERATED_AT)

    assert pdf == again
    assert b"/BaseFont /STSong-Light" in pdf
    assert b"/FontFile2" not in pdf
    assert name in _all_text(pdf)
    messages = [r.getMessage() for r in caplog.records if r.name == "sealed_bid.records"]
    assert len(messages) == 2, messages  # once per process, not per rendering
    assert "cannot load the CJK font" in messages[0]
    assert str(damaged) in messages[0]
    assert "no CJK TrueType font found" in messages[1]
    assert "fonts-wqy-microhei" in messages[1]


def test_records_rendered_in_parallel_threads_are_the_same(
    record_json: str, record_pdf: bytes, font_files: Any
) -> None:
    font_files(pdf_render.CJK_FONT_FILES)  # the first rendering also loads the font
    names = [f"郑州路桥建设有限公司{n}" for n in range(6)]
    alone = [
        render_record_pdf(_with_bidder(record_json, name), generated_at=GENERATED_AT)
        for name in names
    ]
    pdf_render._load_cjk_font.cache_clear()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        together = list(
            pool.map(
                lambda name: render_record_pdf(
                    _with_bidder(record_json, name), generated_at=GENERATED_AT
                ),
                names,
            )
        )
    assert together == alone
    assert render_record_pdf(record_json, generated_at=GENERATED_AT) == record_pdf


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
    pages = _pages_text(text)
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
