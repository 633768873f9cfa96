"""Sign the opening-record PDF with a platform key on the token, and validate it.

Owns the record's PDF signature profile: one PAdES baseline signature
(ETSI.CAdES.detached, SHA-256, RSA PKCS#1 v1.5) with a signature time stamp (B-T), then a
document time stamp over the signed file, both from the same time-stamping authority
(ADR 0015). Signing goes through pyhanko's ``PKCS11Signer`` on ``Token.pkcs11_session``;
the token's lock is held only while the key handle is looked up and while the token
signs, never while a time-stamp request is on the wire.

It must never sign with a tender key (only ``PLATFORM_SIGNING_KEYS``), never let a
private key or PIN leave the token, and never fetch anything while validating (no AIA,
OCSP or CRL requests: validation is offline and does not require revocation data).
Validation describes, it does not raise: a broken or untrusted signature is reported in
``RecordPdfValidation``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError
from pyhanko.sign.validation import (
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import NO_REVOCATION, CertRevTrustPolicy

from sealed_bid.errors import ConfigError, TimestampUnavailable
from sealed_bid.hsm.token import PLATFORM_SIGNING_KEYS, Token
from sealed_bid.records.pdf_render import ATTACHMENT_NAME

DEFAULT_REASON: Final = "Opening record of the tender, as published by Sealed Bid"
SIGNATURE_FIELD: Final = "OpeningRecordSignature"
TIMESTAMP_FIELD: Final = "OpeningRecordTimestamp"
MD_ALGORITHM: Final = "sha256"
MAX_PROBLEM_CHARS: Final = 300


@dataclass(frozen=True)
class TimestampCheck:
    """One RFC 3161 time stamp found in the record PDF, as validated."""

    time: datetime
    intact: bool
    valid: bool
    trusted: bool
    tsa_subject: str
    tsa_certificate_sha256: str

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted


@dataclass(frozen=True)
class RecordPdfValidation:
    """What validating a signed opening-record PDF established. ``ok`` is the verdict;
    the other fields say why."""

    signature_found: bool
    intact: bool
    """The signed byte ranges hash to the digest that was signed."""
    valid: bool
    """The signature value verifies under the signer certificate's key."""
    trusted: bool
    """The signer certificate chains to one of the trust roots, with the right key usage."""
    pades: bool
    """SubFilter ETSI.CAdES.detached."""
    coverage: str | None
    """pyhanko's coverage level of the signature: ENTIRE_FILE, ENTIRE_REVISION, ..."""
    modification_level: str | None
    """What the later revisions change (NONE, LTA_UPDATES, ..., OTHER), if any."""
    signer_subject: str | None
    signer_certificate_sha256: str | None
    signing_time: datetime | None
    """The signature time stamp's time if there is one, else the time the signer claims."""
    signature_timestamp: TimestampCheck | None
    document_timestamp: TimestampCheck | None
    document_timestamp_coverage: str | None
    record_json: str | None
    """The attached ``opening-record.json`` as of the signed revision."""
    record_sha256: str | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """The signature is intact, valid, trusted and PAdES; every time stamp present is
        intact, valid and trusted; nothing but time stamps follows the signature and
        nothing at all follows the last time stamp; the record JSON is attached."""
        last_coverage = (
            self.coverage if self.document_timestamp is None else self.document_timestamp_coverage
        )
        return (
            self.signature_found
            and self.intact
            and self.valid
            and self.trusted
            and self.pades
            and (self.signature_timestamp is None or self.signature_timestamp.ok)
            and (self.document_timestamp is None or self.document_timestamp.ok)
            and last_coverage == "ENTIRE_FILE"
            and self.record_json is not None
            and not self.problems
        )


# --- Signing -----------------------------------------------------------------------------
class _TokenPKCS11Signer(PKCS11Signer):
    """pyhanko's PKCS11Signer that touches the token's session only under the Token's
    lock: once to find the key handle, then for each raw signature. pyhanko calls the
    time-stamping authority between and after those, outside the lock."""

    def __init__(
        self,
        token: Token,
        key_label: str,
        signing_cert: asn1_x509.Certificate,
        ca_chain: Sequence[asn1_x509.Certificate],
    ) -> None:
        self._token = token
        with token.pkcs11_session() as session:
            super().__init__(
                session,
                key_label=key_label,
                signing_cert=signing_cert,
                ca_chain=list(ca_chain),
                other_certs_to_pull=(),
            )
            # The property loads the key handle now, under the lock; pyhanko would
            # otherwise load it lazily from wherever it first needs the certificate.
            _ = self.signing_cert

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            result: bytes = await super().async_sign_raw(data, digest_algorithm, dry_run=True)
            return result
        with self._token.pkcs11_session():
            signature: bytes = await super().async_sign_raw(data, digest_algorithm)
            return signature


def sign_record_pdf(
    pdf: bytes,
    *,
    token: Token,
    key_label: str,
    certificate_der: bytes,
    chain_der: Sequence[bytes],
    timestamper: TimeStamper | None,
    reason: str = DEFAULT_REASON,
    location: str | None = None,
) -> bytes:
    """Sign ``pdf`` (from ``render_record_pdf``) with the platform key ``key_label`` on
    the token: a PAdES signature with a signature time stamp, then a document time stamp,
    both from ``timestamper`` (``HTTPTimeStamper(url)`` in the service). Without a
    timestamper the result is PAdES B-B with no document time stamp.

    ``certificate_der`` is the key's certificate (the token stores none) and
    ``chain_der`` its issuers, embedded for validators. Raises ``ValueError`` for a
    label that is not a platform signing key or input that is not a PDF,
    ``ConfigError`` if the certificate is not the token key's, ``TokenError`` if the
    token fails, ``TimestampUnavailable`` if the authority does not answer.
    Call it from a thread without a running event loop.
    """
    if key_label not in PLATFORM_SIGNING_KEYS:
        raise ValueError(f"{key_label!r} is not a platform signing key")
    certificate = x509.load_der_x509_certificate(certificate_der)
    if certificate.public_key() != token.public_key(key_label):
        raise ConfigError(
            f"the certificate {certificate.subject.rfc4514_string()!r} does not belong to "
            f"the token key {key_label!r}"
        )
    signer = _TokenPKCS11Signer(
        token,
        key_label,
        asn1_x509.Certificate.load(certificate_der),
        [asn1_x509.Certificate.load(der) for der in chain_der],
    )
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        md_algorithm=MD_ALGORITHM,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
    )
    try:
        return asyncio.run(_sign(pdf, signer, metadata, timestamper))
    except TimestampRequestError as exc:
        raise TimestampUnavailable(
            f"the time-stamping authority did not answer: {_bounded(exc)}"
        ) from None
    except pdf_misc.PdfReadError as exc:
        raise ValueError(f"not a readable PDF: {_bounded(exc)}") from None
    except SigningError as exc:
        raise ValueError(f"pyhanko refused to sign: {_bounded(exc)}") from None


async def _sign(
    pdf: bytes,
    signer: _TokenPKCS11Signer,
    metadata: signers.PdfSignatureMetadata,
    timestamper: TimeStamper | None,
) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    pdf_signer = signers.PdfSigner(metadata, signer=signer, timestamper=timestamper)
    signed: io.BytesIO = await pdf_signer.async_sign_pdf(writer, output=io.BytesIO())
    if timestamper is None:
        return signed.getvalue()
    stamper = signers.PdfTimeStamper(timestamper, field_name=TIMESTAMP_FIELD)
    stamped: io.BytesIO = await stamper.async_timestamp_pdf(
        IncrementalPdfFileWriter(signed), MD_ALGORITHM, output=io.BytesIO()
    )
    return stamped.getvalue()


# --- Validation --------------------------------------------------------------------------
def validate_record_pdf(
    pdf: bytes, *, trust_roots_der: Sequence[bytes], tsa_roots_der: Sequence[bytes]
) -> RecordPdfValidation:
    """Validate a signed opening-record PDF offline: the one signature against
    ``trust_roots_der`` (the platform root), its time stamp and the document time stamp
    against ``tsa_roots_der``. Revocation data is not required. Never raises for a bad
    or unreadable PDF: see ``RecordPdfValidation.problems``."""
    if not trust_roots_der:
        raise ValueError("no trust roots: refusing to validate against nothing")
    try:
        return asyncio.run(_validate(pdf, trust_roots_der, tsa_roots_der))
    except Exception as exc:  # hostile input must become a report, never an exception
        return _unreadable(f"cannot read or validate the PDF: {_bounded(exc)}")


def offline_context(roots_der: Sequence[bytes]) -> ValidationContext:
    """A validation context over exactly ``roots_der`` (none: nothing is trusted, never
    the operating system's roots) that fetches nothing and requires no revocation data.
    Shared with ``records.bid_pdfs``."""
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(der) for der in roots_der],
        allow_fetching=False,
        revinfo_policy=CertRevTrustPolicy(NO_REVOCATION),
    )


async def release(context: ValidationContext) -> None:
    """Close what a validation context may have opened (pyhanko's own synchronous entry
    points do this; the async ones leave it to the caller)."""
    await context.aclose()  # type: ignore[no-untyped-call]


async def _validate(
    pdf: bytes, trust_roots_der: Sequence[bytes], tsa_roots_der: Sequence[bytes]
) -> RecordPdfValidation:
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    signatures = reader.embedded_regular_signatures
    timestamps = reader.embedded_timestamp_signatures
    problems: list[str] = []
    if not signatures:
        return _unreadable("the PDF carries no signature")
    if len(signatures) > 1:
        problems.append(f"the PDF carries {len(signatures)} signatures, expected one")
    if len(timestamps) > 1:
        problems.append(f"the PDF carries {len(timestamps)} document time stamps")
    embedded = signatures[0]
    if timestamps and timestamps[0].signed_revision < embedded.signed_revision:
        problems.append("the document time stamp precedes the signature")

    signer_context = offline_context(trust_roots_der)
    tsa_context = offline_context(tsa_roots_der)
    try:
        status = await async_validate_pdf_signature(
            embedded,
            signer_validation_context=signer_context,
            ts_validation_context=tsa_context,
        )
        document_ts: TimestampCheck | None = None
        document_ts_coverage: str | None = None
        if timestamps:
            ts_status = await async_validate_pdf_timestamp(
                timestamps[-1], validation_context=tsa_context
            )
            document_ts = _timestamp_check(ts_status)
            document_ts_coverage = _name(ts_status.coverage)
    finally:
        await release(signer_context)
        await release(tsa_context)

    signature_ts = (
        None if status.timestamp_validity is None else _timestamp_check(status.timestamp_validity)
    )
    record_json = _attached_record(reader, embedded.signed_revision)
    if record_json is None:
        problems.append(f"the signed revision has no attachment {ATTACHMENT_NAME!r}")
    if status.trust_problem_indic is not None and not status.trusted:
        problems.append(f"signer not trusted: {_name(status.trust_problem_indic)}")
    signing_time = signature_ts.time if signature_ts is not None else status.signer_reported_dt
    return RecordPdfValidation(
        signature_found=True,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        pades=str(embedded.sig_object.get("/SubFilter")) == "/ETSI.CAdES.detached",
        coverage=_name(status.coverage),
        modification_level=_name(status.modification_level),
        signer_subject=str(status.signing_cert.subject.human_friendly),
        signer_certificate_sha256=bytes(status.signing_cert.sha256).hex(),
        signing_time=signing_time,
        signature_timestamp=signature_ts,
        document_timestamp=document_ts,
        document_timestamp_coverage=document_ts_coverage,
        record_json=record_json,
        record_sha256=(
            None if record_json is None else hashlib.sha256(record_json.encode("utf-8")).hexdigest()
        ),
        problems=tuple(problems),
    )


def _timestamp_check(status: Any) -> TimestampCheck:
    cert = status.signing_cert
    return TimestampCheck(
        time=status.timestamp,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        tsa_subject=str(cert.subject.human_friendly),
        tsa_certificate_sha256=bytes(cert.sha256).hex(),
    )


def _attached_record(reader: PdfFileReader, revision: int) -> str | None:
    """The ``opening-record.json`` attachment as the signature's revision has it, so a
    later incremental update cannot swap it under the signature."""
    try:
        root = reader.get_historical_resolver(revision).root
        names = root["/Names"]["/EmbeddedFiles"]["/Names"]
        for index in range(0, len(names) - 1, 2):
            if str(names[index]) == ATTACHMENT_NAME:
                stream = names[index + 1].get_object()["/EF"]["/F"].get_object()
                data: bytes = stream.data
                return data.decode("utf-8")
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, pdf_misc.PdfError):
        return None
    return None


def _unreadable(problem: str) -> RecordPdfValidation:
    return RecordPdfValidation(
        signature_found=False,
        intact=False,
        valid=False,
        trusted=False,
        pades=False,
        coverage=None,
        modification_level=None,
        signer_subject=None,
        signer_certificate_sha256=None,
        signing_time=None,
        signature_timestamp=None,
        document_timestamp=None,
        document_timestamp_coverage=None,
        record_json=None,
        record_sha256=None,
        problems=(problem,),
    )


def _name(value: object) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


def _bounded(exc: BaseException) -> str:
    """An exception as ``Type: message``, cut to MAX_PROBLEM_CHARS (hostile PDFs can
    make pyhanko quote large parts of themselves)."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    if len(text) > MAX_PROBLEM_CHARS:
        return text[: MAX_PROBLEM_CHARS - 1] + "…"
    return text
