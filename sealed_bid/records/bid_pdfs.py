"""Report the signatures inside a PDF document that a bidder put in its bid package.

At the opening, a decrypted package may hold PDFs that the bidder (or others) signed
with their own certificates. This module lists each signature and document time stamp
in such a PDF: who signed (subject CN and O), when, whether the signed bytes are intact
and the signature value valid, whether the certificate chains to the roots it is given
(the bidder CAs' anchors), and whether it is PAdES.

The PDF is hostile input. This module must never raise on it: a file that is too big,
does not parse, or makes pyhanko fail becomes an entry with status ``unreadable`` and a
bounded error text; stream decoding stays within pyhanko's default limits for untrusted
input (``DecodeLimits``), and at most ``MAX_SIGNATURES`` signatures are validated. It
must never fetch anything (no AIA, OCSP or CRL requests), and it checks no revocation: a
``trusted`` entry means "chains to a given root, right key usage, now", nothing more.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints

from sealed_bid.records.pades import MAX_PROBLEM_CHARS, offline_context, release

BidPdfStatus = Literal["trusted", "untrusted", "invalid", "unreadable"]
SignatureKind = Literal["signature", "document_timestamp"]

MAX_SIGNATURES: Final = 32
"""At most this many signatures of one PDF are validated; the rest are one entry."""

_SIGNER_KEY_USAGE: Final = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)
"""Bidder CAs differ: either usage marks a document-signing certificate."""

_PADES_SUBFILTERS: Final = frozenset({"/ETSI.CAdES.detached", "/ETSI.RFC3161"})


@dataclass(frozen=True)
class BidPdfSignature:
    """One signature (or document time stamp) in a bidder's PDF, or why the PDF could not
    be read (then ``status`` is ``unreadable`` and ``error`` says why)."""

    status: BidPdfStatus
    kind: SignatureKind | None
    field_name: str | None
    signer_common_name: str | None
    signer_organisation: str | None
    signer_certificate_sha256: str | None
    signing_time: datetime | None
    signing_time_source: Literal["timestamp", "signer"] | None
    """``timestamp``: from a valid time-stamp token; ``signer``: what the signer claims."""
    intact: bool
    valid: bool
    trusted: bool
    pades: bool
    coverage: str | None
    """ENTIRE_FILE, ENTIRE_REVISION (later updates exist), ... as pyhanko reports."""
    modification_level: str | None
    """What later updates change, by pyhanko's difference analysis: NONE, LTA_UPDATES,
    FORM_FILLING, ANNOTATIONS or OTHER (anything else: treat the signed content as
    possibly altered)."""
    error: str | None


def validate_bid_pdf(
    path: Path, *, trust_roots_der: Sequence[bytes], max_bytes: int
) -> list[BidPdfSignature]:
    """Every signature and document time stamp in the PDF at ``path``, in signing order;
    ``[]`` for an unsigned PDF; one ``unreadable`` entry for a file larger than
    ``max_bytes`` or one that cannot be read or validated. Never raises for the file's
    content (only ``ValueError`` for a non-positive ``max_bytes``)."""
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        return [_unreadable(f"cannot read the file: {exc.strerror or type(exc).__name__}")]
    if len(data) > max_bytes:
        return [_unreadable(f"larger than the limit of {max_bytes} bytes")]
    try:
        return asyncio.run(_validate(data, trust_roots_der))
    except Exception as exc:  # hostile input: every failure is a report
        return [_unreadable(_bounded(exc))]


async def _validate(data: bytes, trust_roots_der: Sequence[bytes]) -> list[BidPdfSignature]:
    reader = _read(data)
    embedded = list(reader.embedded_signatures)
    results: list[BidPdfSignature] = []
    for signature in embedded[:MAX_SIGNATURES]:
        context = offline_context(trust_roots_der)
        try:
            results.append(await _one(signature, context))
        except Exception as exc:  # one bad signature must not hide the others
            results.append(_unreadable(_bounded(exc), field_name=_field_name(signature)))
        finally:
            await release(context)
    if len(embedded) > MAX_SIGNATURES:
        results.append(
            _unreadable(f"{len(embedded) - MAX_SIGNATURES} more signatures were not validated")
        )
    return results


def _read(data: bytes) -> PdfFileReader:
    """Strict parsing first; real-world PDFs with small xref faults are read leniently,
    since every signature is still checked byte range by byte range."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        _ = reader.embedded_signatures
    except pdf_misc.PdfStrictReadError:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
    return reader


async def _one(signature: Any, context: Any) -> BidPdfSignature:
    subfilter = str(signature.sig_object.get("/SubFilter"))
    kind: SignatureKind
    status: DocumentTimestampStatus | PdfSignatureStatus
    source: Literal["timestamp", "signer"]
    signing_time: datetime | None
    if signature.sig_object_type == "/DocTimeStamp":
        kind = "document_timestamp"
        status = await async_validate_pdf_timestamp(signature, validation_context=context)
        signing_time, source = status.timestamp, "timestamp"
    else:
        kind = "signature"
        status = await async_validate_pdf_signature(
            signature,
            signer_validation_context=context,
            key_usage_settings=_SIGNER_KEY_USAGE,
        )
        tst = status.timestamp_validity
        if tst is not None and tst.intact and tst.valid:
            signing_time, source = tst.timestamp, "timestamp"
        else:
            signing_time, source = status.signer_reported_dt, "signer"
    intact, valid, trusted = bool(status.intact), bool(status.valid), bool(status.trusted)
    verdict: BidPdfStatus = (
        "invalid" if not (intact and valid) else "trusted" if trusted else "untrusted"
    )
    cert: asn1_x509.Certificate = status.signing_cert
    return BidPdfSignature(
        status=verdict,
        kind=kind,
        field_name=_field_name(signature),
        signer_common_name=_name_part(cert, "common_name"),
        signer_organisation=_name_part(cert, "organization_name"),
        signer_certificate_sha256=bytes(cert.sha256).hex(),
        signing_time=signing_time,
        signing_time_source=source if signing_time is not None else None,
        intact=intact,
        valid=valid,
        trusted=trusted,
        pades=subfilter in _PADES_SUBFILTERS,
        coverage=None if status.coverage is None else str(status.coverage.name),
        modification_level=(
            None if status.modification_level is None else str(status.modification_level.name)
        ),
        error=None,
    )


def _field_name(signature: Any) -> str | None:
    try:
        return _bounded_text(str(signature.field_name))
    except Exception:
        return None


def _name_part(cert: asn1_x509.Certificate, part: str) -> str | None:
    value = cert.subject.native.get(part)
    if isinstance(value, list):  # a multi-valued attribute: show them all
        value = ", ".join(str(item) for item in value)
    return None if value is None else _bounded_text(str(value))


def _unreadable(error: str, *, field_name: str | None = None) -> BidPdfSignature:
    return BidPdfSignature(
        status="unreadable",
        kind=None,
        field_name=field_name,
        signer_common_name=None,
        signer_organisation=None,
        signer_certificate_sha256=None,
        signing_time=None,
        signing_time_source=None,
        intact=False,
        valid=False,
        trusted=False,
        pades=False,
        coverage=None,
        modification_level=None,
        error=_bounded_text(error),
    )


def _bounded(exc: BaseException) -> str:
    return _bounded_text(f"{type(exc).__name__}: {exc}")


def _bounded_text(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_PROBLEM_CHARS:
        return text[: MAX_PROBLEM_CHARS - 1] + "…"
    return text
