"""The opening record as a human-readable A4 PDF, with the exact record JSON attached.

Owns the layout: the tender, every bid row, the not-opened envelopes and, generically,
any top-level field this module does not know yet (so later additions to the record show
up without a code change). Runs Helvetica cannot show (Chinese) are set in a CJK TrueType
font found on the machine (``CJK_FONT_FILES``: WenQuanYi Micro Hei first, package
fonts-wqy-microhei), embedded as a subset of the glyphs used, so any viewer shows them.
Characters that font lacks (rare CJK Extension A/B characters in a name), or all of them
if no such font is installed (one warning is logged; the rendering still succeeds), are
set in reportlab's built-in CID font STSong-Light, which is never embedded: the text
layer stays exact, but only a viewer with an Asian font pack draws them. Latin-only text
is in Helvetica; digests in Courier, wrapped anywhere.

The attachment ``opening-record.json`` carries ``record_json`` byte for byte and is the
normative record; the pages are only its rendering. The output is deterministic for the
same ``record_json`` and ``generated_at`` (reportlab's invariant mode, dates fixed to
``generated_at``), so it can be re-made and compared.

It must never change, re-encode or re-sort the record JSON it attaches, and never sign:
signing is ``records.pades``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Container, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.pdfdoc import (
    PDFArray,
    PDFDictionary,
    PDFName,
    PDFStream,
    PDFString,
    PDFZCompress,
)
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from sealed_bid.domain.canonical import format_time

log = logging.getLogger("sealed_bid.records")

ATTACHMENT_NAME: Final = "opening-record.json"
"""The name of the embedded file that holds the record JSON."""

CJK_FONT_FILES: Final[tuple[tuple[str, int], ...]] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # fonts-wqy-microhei
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),  # fonts-droid-fallback
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),  # fonts-arphic-uming
)
"""The TrueType CJK fonts tried, in order: (file, index of the font in a .ttc collection).
The first one that exists and loads is embedded (as a subset) for every character
Helvetica cannot show and it has. Only TrueType outlines work: reportlab cannot embed
CFF-based OpenType fonts, which rules out the Noto Sans/Serif CJK files Debian ships."""

EMBEDDED_CJK_FONT: Final = "SealedBid-CJK"
"""The name the CJK TrueType font is registered under with reportlab."""
FALLBACK_CJK_FONT: Final = "STSong-Light"
"""reportlab's built-in CID font (not embedded), for characters the embedded font lacks,
and for all of them when no file of ``CJK_FONT_FILES`` loads."""
_LATIN_FONT: Final = "Helvetica"
_LATIN_BOLD: Final = "Helvetica-Bold"
_MONO_FONT: Final = "Courier"

_MARGIN: Final = 18 * mm
_FRAME_WIDTH: Final = A4[0] - 2 * _MARGIN
_PAD: Final = 3
_MAX_DEPTH: Final = 6
_LONG_TOKEN: Final = re.compile(r"\S{33,}")

_TOP_LABELS: Final = {
    "tender_id": "Tender ID / 项目编号",
    "title": "Title / 项目名称",
    "deadline": "Submission deadline / 投标截止时间",
    "opening_time": "Scheduled opening / 开标时间",
    "opened_at": "Opened at / 实际开标时间",
    "format": "Record format / 记录格式",
}
_KNOWN_TOP: Final = frozenset({*_TOP_LABELS, "bids", "not_opened"})

_ROW_LABELS: Final = {
    "status": "Status / 状态",
    "reason": "Reason / 原因",
    "received_at": "Received at / 接收时间",
    "log_sequence": "Log sequence / 日志序号",
    "envelope_sha256": "Envelope SHA-256 / 投标文件摘要",
    "size": "Envelope size (bytes) / 大小(字节)",
    "inner_signing_time": "Signed by bidder at / 投标人签名时间",
    "package_sha256": "Package SHA-256 / 投标包摘要",
}
_BIDDER_LABELS: Final = {
    "organisation": "Organisation / 投标单位",
    "common_name": "Certificate name / 证书名称",
    "credit_code": "Credit code / 统一社会信用代码",
    "certificate_sha256": "Certificate SHA-256 / 证书摘要",
}
_FORM_LABELS: Final = {
    "bidder_name": "Bidder name (declared) / 投标人名称(自报)",
    "price": "Price / 投标报价",
    "currency": "Currency / 币种",
    "duration_days": "Duration (days) / 工期(天)",
    "fields": "Further fields / 其他字段",
    "tender_id": "Tender ID (declared) / 项目编号(自报)",
    "format": "Form format / 格式",
}
_STATUS_NAMES: Final = {
    "OPENED": "已开启",
    "KEY_TRANSPORT_FAILED": "密钥解封失败",
    "DECRYPTION_FAILED": "解密失败",
    "INNER_SIGNATURE_INVALID": "内层签名无效",
    "SIGNER_MISMATCH": "签名人不一致",
    "MALFORMED_PACKAGE": "投标包格式错误",
    "REPLACED": "已被替换",
    "WITHDRAWN": "已撤回",
}


def render_record_pdf(record_json: str, *, generated_at: datetime) -> bytes:
    """An A4 PDF of the opening record ``record_json`` (the published canonical JSON),
    with that JSON attached as ``opening-record.json`` and its SHA-256 on the first page.

    Raises ``ValueError`` if ``record_json`` is not a JSON object or ``generated_at`` is
    naive.
    """
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    record = json.loads(record_json)
    if not isinstance(record, dict):
        raise ValueError("the opening record must be a JSON object")
    data = record_json.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    when = generated_at.astimezone(UTC)
    _cjk_font()  # load the font (or log the fallback) before laying anything out

    tender = _text(record.get("tender_id", ""))
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 4 * mm,
        title=f"Opening record {tender}",
        author="Sealed Bid",
        subject=f"Opening record of tender {tender}; record SHA-256 {digest}",
        creator="Sealed Bid",
        invariant=1,
    )

    def first_page(canvas: Any, _doc: Any) -> None:
        canvas.setDateFormatter(_date_formatter(when))
        _attach_record(canvas, data, when)
        _footer(canvas, tender, digest)

    def later_page(canvas: Any, _doc: Any) -> None:
        _footer(canvas, tender, digest)

    document.build(_story(record, digest, when), onFirstPage=first_page, onLaterPages=later_page)
    return out.getvalue()


# --- The story ---------------------------------------------------------------------------
def _story(record: dict[str, Any], digest: str, when: datetime) -> list[Flowable]:
    story: list[Flowable] = [
        _para("Opening record / 开标记录", _style("title")),
        Spacer(1, 3 * mm),
    ]
    top = [(_TOP_LABELS[k], record[k]) for k in _TOP_LABELS if k in record]
    top.append(("Record SHA-256 / 记录摘要", digest))
    top.append(("Rendered at / 生成时间", format_time(when)))
    story.append(_kv_table(top, _FRAME_WIDTH))
    story.append(Spacer(1, 2 * mm))
    story.append(
        _para(
            f"The attached file {ATTACHMENT_NAME} is the normative record; the SHA-256 "
            "above is over its exact bytes. These pages are a rendering for reading. "
            f"本文件所附 {ATTACHMENT_NAME} 为正式开标记录，上列摘要即其 SHA-256；"  # noqa: RUF001
            "各页内容仅为便于阅读的呈现。",
            _style("note"),
        )
    )

    bids = record.get("bids")
    not_opened = record.get("not_opened")
    bid_list = bids if isinstance(bids, list) else []
    opened = sum(1 for b in bid_list if isinstance(b, dict) and b.get("status") == "OPENED")
    summary: list[tuple[str, object]] = [
        ("Bids / 投标", len(bid_list)),
        ("Opened / 已开启", opened),
        ("Not opened / 未开启", len(not_opened) if isinstance(not_opened, list) else 0),
    ]
    story += [Spacer(1, 4 * mm), _kv_table(summary, _FRAME_WIDTH)]

    story.append(_heading("Bids / 投标"))
    if isinstance(bids, list):
        if not bids:
            story.append(_para("(none / 无)"))
        for number, row in enumerate(bids, 1):
            story += _bid_section(number, len(bids), row)
    elif bids is not None:
        story.append(_cell(bids, _FRAME_WIDTH))

    story.append(
        _heading("Replaced or withdrawn envelopes, never decrypted / 已替换或撤回(未解密)")
    )
    story += _not_opened_section(not_opened)

    for key, value in record.items():
        if key not in _KNOWN_TOP:
            story.append(_heading(key))
            story += _block(value, _FRAME_WIDTH)
    return story


def _bid_section(number: int, total: int, row: object) -> list[Flowable]:
    if not isinstance(row, dict):
        return [_heading(f"Bid {number} of {total}", level=2), *_block(row, _FRAME_WIDTH)]
    status = _text(row.get("status", ""))
    title = f"Bid {number} of {total} / 第 {number} 份: {_text(row.get('bid_id', ''))}"
    rows: list[tuple[str, object]] = []
    for key, label in _ROW_LABELS.items():
        if key not in row:
            continue
        value = row[key]
        if key == "status":
            value = f"{status} {_STATUS_NAMES.get(status, '')}".strip()
        rows.append((label, value))
    bidder = row.get("bidder")
    if isinstance(bidder, dict):
        rows += _labelled(bidder, _BIDDER_LABELS)
    elif "bidder" in row:
        rows.append(("Bidder / 投标人", bidder))
    form = row.get("form")
    if isinstance(form, dict):
        rows += _labelled(form, _FORM_LABELS)
    elif "form" in row:
        rows.append(("Bid form / 投标函", form))
    known = {"bid_id", "bidder", "form", "documents", *_ROW_LABELS}
    rows += [(key, value) for key, value in row.items() if key not in known]

    section: list[Flowable] = [
        KeepTogether([_heading(title, level=2), _kv_table(rows[:4], _FRAME_WIDTH)]),
        _kv_table(rows[4:], _FRAME_WIDTH) if rows[4:] else Spacer(1, 0),
    ]
    documents = row.get("documents")
    if isinstance(documents, list) and documents:
        label = _para("Documents / 文件", _style("label"))
        section += [Spacer(1, 2 * mm), KeepTogether([label, _documents_table(documents)])]
    elif documents not in (None, []):
        section.append(_kv_table([("Documents / 文件", documents)], _FRAME_WIDTH))
    return section


def _labelled(values: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, object]]:
    """Known keys under their labels, in label order; unknown keys after, by name."""
    rows: list[tuple[str, object]] = [(labels[k], values[k]) for k in labels if k in values]
    rows += [(key, value) for key, value in values.items() if key not in labels]
    return rows


def _documents_table(documents: list[Any]) -> Table:
    widths = (_FRAME_WIDTH * 0.34, _FRAME_WIDTH * 0.14, _FRAME_WIDTH * 0.52)
    header = ["Name / 文件名", "Size (bytes) / 大小", "SHA-256 / 摘要"]
    rows: list[list[Any]] = [[_para(h, _style("label")) for h in header]]
    for document in documents:
        if isinstance(document, dict):
            extra = {k: v for k, v in document.items() if k not in ("name", "size", "sha256")}
            name: list[Flowable] = [_para(_text(document.get("name")))]
            if extra:
                name += _block(extra, widths[0] - 2 * _PAD)
            rows.append(
                [name, _para(_text(document.get("size"))), _para(_text(document.get("sha256")))]
            )
        else:
            rows.append([_para(_text(document)), "", ""])
    return _grid(rows, widths, header=True)


def _not_opened_section(not_opened: object) -> list[Flowable]:
    if not isinstance(not_opened, list):
        return [] if not_opened is None else _block(not_opened, _FRAME_WIDTH)
    if not not_opened:
        return [_para("(none / 无)")]
    widths = (_FRAME_WIDTH * 0.30, _FRAME_WIDTH * 0.20, _FRAME_WIDTH * 0.50)
    header = ["Bid ID / 投标编号", "Status / 状态", "Envelope SHA-256 / 投标文件摘要"]
    rows: list[list[Any]] = [[_para(h, _style("label")) for h in header]]
    for entry in not_opened:
        if not isinstance(entry, dict):
            rows.append([_para(_text(entry)), "", ""])
            continue
        status = _text(entry.get("status", ""))
        rows.append(
            [
                _para(_text(entry.get("bid_id"))),
                _para(f"{status} {_STATUS_NAMES.get(status, '')}".strip()),
                _para(_text(entry.get("envelope_sha256"))),
            ]
        )
        extra = {k: v for k, v in entry.items() if k not in ("bid_id", "status", "envelope_sha256")}
        if extra:
            rows.append(["", _block(extra, widths[1] + widths[2] - 2 * _PAD), ""])
    return [_grid(rows, widths, header=True)]


# --- Generic rendering (unknown fields) -------------------------------------------------
def _block(value: object, width: float) -> list[Flowable]:
    cell = _cell(value, width)
    return cell if isinstance(cell, list) else [cell]


def _cell(value: object, width: float, depth: int = 0) -> Flowable | list[Flowable]:
    """Any JSON value as flowables that fit ``width``: objects as key/value tables,
    arrays of scalars joined, arrays of objects one after the other."""
    if depth >= _MAX_DEPTH:
        return _para(json.dumps(value, ensure_ascii=False, sort_keys=True))
    if isinstance(value, dict):
        if not value:
            return _para("{}")
        return _kv_table(list(value.items()), width, depth + 1)
    if isinstance(value, list):
        if not value:
            return _para("(none / 无)")
        if all(not isinstance(item, dict | list) for item in value):
            return _para(", ".join(_text(item) for item in value))
        items: list[Flowable] = []
        for number, item in enumerate(value, 1):
            items.append(_para(f"[{number}]", _style("label")))
            inner = _cell(item, width, depth + 1)
            items += inner if isinstance(inner, list) else [inner]
        return items
    return _para(_text(value))


def _kv_table(rows: list[tuple[str, object]], width: float, depth: int = 0) -> Table:
    label_width = min(52 * mm, width * 0.36)
    value_width = width - label_width
    data = [
        [_para(label, _style("label")), _cell(value, value_width - 2 * _PAD, depth)]
        for label, value in rows
    ]
    return _grid(data, (label_width, value_width), header=False)


def _grid(rows: list[list[Any]], widths: Iterable[float], *, header: bool) -> Table:
    table = Table(rows, colWidths=list(widths), repeatRows=1 if header else 0)
    commands: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), _PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), _PAD),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8E8E8")))
    else:
        commands.append(("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#F2F2F2")))
    table.setStyle(TableStyle(commands))
    return table


# --- Text and fonts ---------------------------------------------------------------------
def _text(value: object) -> str:
    """A JSON scalar as shown: strings as they are, null as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _para(text: str, style: ParagraphStyle | None = None) -> Paragraph:
    """A paragraph of ``text``: Latin runs in the style's font, other runs (Chinese) in
    the CJK font; long unbroken tokens (digests) in Courier, wrapped anywhere so they
    never overflow a cell."""
    if style is None:
        style = _style("mono") if _LONG_TOKEN.search(text) and _latin(text) else _style("body")
    if not _latin(text):
        # Chinese has no spaces: lines may break between any two characters.
        style = _cjk_wrapping(style)
    return Paragraph(_markup(text), style)


def _markup(text: str) -> str:
    """Paragraph markup with every run Helvetica cannot show switched to a CJK font, so
    Latin text keeps its font in mixed lines."""
    parts: list[str] = []
    for font, run in _runs(text):
        escaped = escape(run).replace("\n", "<br/>")
        parts.append(escaped if font is None else f'<font name="{font}">{escaped}</font>')
    return "".join(parts)


def _runs(text: str) -> Iterator[tuple[str | None, str]]:
    """``text`` cut into runs of one font: ``None`` for the style's (Latin) font, else the
    CJK font to set the run in."""
    for font, chars in itertools.groupby(text, key=_cjk_font_for):
        yield font, "".join(chars)


def _cjk_font_for(char: str) -> str | None:
    if _latin(char):
        return None
    name, glyphs = _cjk_font()
    return name if ord(char) in glyphs else FALLBACK_CJK_FONT


def _heading(text: str, level: int = 1) -> Paragraph:
    return _para(text, _style("h1" if level == 1 else "h2"))


def _latin(text: str) -> bool:
    """Whether Helvetica (WinAnsi) can show every character of ``text``."""
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


_FONT_LOCK: Final = threading.Lock()


def _cjk_font() -> tuple[str, Container[int]]:
    """The registered name of the font for text Helvetica cannot show and the code points
    it has glyphs for, loaded once per process (under a lock: records may be rendered in
    several threads)."""
    with _FONT_LOCK:
        return _load_cjk_font()


@functools.cache
def _load_cjk_font() -> tuple[str, Container[int]]:
    pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_CJK_FONT))
    for path, index in CJK_FONT_FILES:
        if not Path(path).is_file():
            continue
        try:
            font = TTFont(EMBEDDED_CJK_FONT, path, subfontIndex=index)
        except Exception as exc:  # a damaged or unsupported file: try the next one
            log.warning("cannot load the CJK font %s (index %d): %s", path, index, exc)
            continue
        pdfmetrics.registerFont(font)
        return EMBEDDED_CJK_FONT, frozenset(font.face.charToGlyph)
    log.warning(
        "no CJK TrueType font found (tried %s): Chinese text in opening record PDFs is set "
        "in %s, which is not embedded, so viewers without an Asian font pack show it blank; "
        "install fonts-wqy-microhei (scripts/setup does)",
        ", ".join(path for path, _ in CJK_FONT_FILES),
        FALLBACK_CJK_FONT,
    )
    return FALLBACK_CJK_FONT, frozenset()


@functools.cache
def _style(name: str) -> ParagraphStyle:
    base = {"fontName": _LATIN_FONT, "fontSize": 9, "leading": 11.5}
    specs: dict[str, dict[str, Any]] = {
        "body": base,
        "label": {**base, "fontName": _LATIN_BOLD, "fontSize": 8.5},
        "note": {**base, "fontSize": 8.5, "textColor": colors.HexColor("#333333")},
        "mono": {**base, "fontName": _MONO_FONT, "fontSize": 8, "wordWrap": "CJK"},
        "title": {**base, "fontName": _LATIN_BOLD, "fontSize": 17, "leading": 21},
        "h1": {
            **base,
            "fontName": _LATIN_BOLD,
            "fontSize": 13,
            "leading": 16,
            "spaceBefore": 8,
            "spaceAfter": 4,
        },
        "h2": {
            **base,
            "fontName": _LATIN_BOLD,
            "fontSize": 10.5,
            "leading": 13,
            "spaceBefore": 6,
            "spaceAfter": 3,
        },
    }
    return ParagraphStyle(name, **specs[name])


@functools.cache
def _cjk_wrapping(style: ParagraphStyle) -> ParagraphStyle:
    return ParagraphStyle(f"{style.name}-cjk", parent=style, wordWrap="CJK")


# --- Page furniture and the attachment ---------------------------------------------------
def _footer(canvas: Any, tender: str, digest: str) -> None:
    text = (
        f"Opening record {tender} · record SHA-256 {digest[:16]}… · page {canvas.getPageNumber()}"
    )
    canvas.saveState()
    canvas.setFillColor(colors.HexColor("#555555"))
    line = canvas.beginText(_MARGIN, _MARGIN - 2 * mm)
    for font, run in _runs(text):
        line.setFont(font or _LATIN_FONT, 7.5)
        line.textOut(run)
    canvas.drawText(line)
    canvas.restoreState()


def _date_formatter(when: datetime) -> Callable[..., str]:
    """reportlab's invariant mode dates every document 2000-01-01; this puts
    ``generated_at`` in /CreationDate and /ModDate instead."""
    stamp = _pdf_date(when)

    def formatter(*_ignored: int) -> str:
        return stamp

    return formatter


def _pdf_date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


def _attach_record(canvas: Any, data: bytes, when: datetime) -> None:
    """Embed ``data`` as the document's only embedded file (catalog /Names /EmbeddedFiles),
    and open the viewer's attachment pane. reportlab has no public API for this; the
    objects are its own low-level PDF objects, written in the first revision."""
    document = canvas._doc  # reportlab exposes the catalog only here
    params = PDFDictionary({"Size": len(data), "ModDate": PDFString(_pdf_date(when))})
    stream = PDFStream(
        PDFDictionary(
            {
                "Type": PDFName("EmbeddedFile"),
                "Subtype": "/application#2Fjson",
                "Params": params,
            }
        ),
        content=data,
        filters=[PDFZCompress],
    )
    stream_ref = document.Reference(stream)
    filespec = PDFDictionary(
        {
            "Type": PDFName("Filespec"),
            "F": PDFString(ATTACHMENT_NAME),
            "UF": PDFString(ATTACHMENT_NAME),
            "Desc": PDFString("Opening record (normative, canonical JSON)"),
            "EF": PDFDictionary({"F": stream_ref, "UF": stream_ref}),
        }
    )
    filespec_ref = document.Reference(filespec)
    names = PDFDictionary({"Names": PDFArray([PDFString(ATTACHMENT_NAME), filespec_ref])})
    document.Catalog.Names = PDFDictionary({"EmbeddedFiles": names})
    document.Catalog.PageMode = PDFName("UseAttachments")
