"""Sealing a bid (the bidder SDK) and opening one (pure crypto, for the service's opening
and for tests).

``seal_bid``: package ZIP -> inner attached SignedData -> AuthEnvelopedData to the tender
certificate (and to ``also_to`` certificates, e.g. the bidder's own) -> outer detached
SignedData over the envelope's SHA-256, all streaming. ``open_bid``: the reverse,
selecting the tender's RecipientInfo (its key transport may be the tender key or a
content key the bidder released).

Neither checks clocks, trust chains or tender rules (the service does); ``open_bid`` must
never leave plaintext behind: its temporary files are deleted whatever happens.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sealed_bid.crypto.envelope import (
    decrypt_envelope,
    inspect_envelope,
    seal_envelope,
)
from sealed_bid.crypto.package import FileSlice, OpenedPackage, PackageLimits, read_package
from sealed_bid.crypto.signed_data import (
    SignatureFacts,
    sign_attached_stream,
    sign_detached,
    verify_attached_file,
)
from sealed_bid.crypto.signer import KeyTransport, Signer
from sealed_bid.errors import (
    AlgorithmRefused,
    InnerSignatureInvalid,
    RecipientMismatch,
    SignatureInvalid,
    SignatureMalformed,
)

ENVELOPE_NAME = "bid.p7m"


@dataclass(frozen=True)
class SealedBid:
    envelope_path: Path
    size: int
    sha256: str
    """Lower-case hex SHA-256 of the envelope bytes."""
    outer_signature_der: bytes


@dataclass(frozen=True)
class OpenedBid:
    inner: SignatureFacts
    """The bidder's signature over the package (not yet checked for trust)."""
    package: OpenedPackage
    pdf_reports: Mapping[str, object] = field(default_factory=dict)
    """For each ``.pdf`` document: what ``inspect_pdf`` said of it (see ``open_bid``)."""


PdfInspector = Callable[[Path], object]
"""Looks at one PDF document while it exists in clear in the work directory."""


class _HashingWriter:
    """Passes writes through to a file while hashing and counting them."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._target.write(data)


def _temporary(directory: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=directory, suffix=suffix)
    os.close(handle)
    return Path(name)


def seal_bid(
    package_path: Path,
    signer: Signer,
    tender_cert_der: bytes,
    out_dir: Path,
    oaep_hash: str = "sha1",
    signing_time: datetime | None = None,
    also_to: Sequence[bytes] = (),
) -> SealedBid:
    """Seal a package for a tender; writes ``out_dir/bid.p7m`` and returns its digest and
    the detached outer signature to submit with it.

    ``also_to``: further recipient certificates (DER), typically the bidder's own, so that
    the bidder can recover the content key itself at the opening (bidder participation).
    Each must hold an RSA key (RSAES-OAEP with ``oaep_hash``); key agreement to an EC
    certificate is not implemented here and is refused with ``AlgorithmRefused``."""
    for certificate_der in also_to:
        _require_rsa_recipient(certificate_der)
    when = signing_time or datetime.now(UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    envelope_path = out_dir / ENVELOPE_NAME
    inner_path = _temporary(out_dir, ".inner.p7s")
    try:
        with package_path.open("rb") as src, inner_path.open("wb") as dst:
            sign_attached_stream(signer, src, dst, when)
        with inner_path.open("rb") as src, envelope_path.open("wb") as out:
            writer = _HashingWriter(out)
            seal_envelope(src, writer, [tender_cert_der, *also_to], oaep_hash)
    finally:
        inner_path.unlink(missing_ok=True)
    digest = writer.digest.digest()
    return SealedBid(
        envelope_path=envelope_path,
        size=writer.size,
        sha256=digest.hex(),
        outer_signature_der=sign_detached(signer, digest, when),
    )


def _require_rsa_recipient(certificate_der: bytes) -> None:
    try:
        public_key = x509.load_der_x509_certificate(certificate_der).public_key()
    except ValueError:
        raise AlgorithmRefused("an extra recipient is not a DER X.509 certificate") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AlgorithmRefused(
            "an extra recipient's certificate does not hold an RSA key; key agreement (e.g. to"
            " an EC certificate) is not implemented here: use an RSA certificate, or seal with"
            " openssl cms -encrypt (see docs/bidder-guide.md)"
        )


def open_bid(
    envelope_path: Path,
    key_transport: KeyTransport,
    recipient_cert_der: bytes,
    work_dir: Path,
    limits: PackageLimits | None = None,
    inspect_pdf: PdfInspector | None = None,
) -> OpenedBid:
    """Decrypt an envelope with the key of ``recipient_cert_der``, verify the inner
    signature cryptographically and read the package. Plaintext lives only in a
    temporary file in ``work_dir``, deleted before this returns or raises.

    Raises the envelope errors of ``inspect_envelope``, ``RecipientMismatch``,
    ``AlgorithmRefused`` (PKCS#1 v1.5), ``KeyTransportFailed``, ``DecryptionFailed``,
    ``InnerSignatureInvalid`` and ``MalformedPackage``. With ``inspect_pdf``, each PDF
    document is extracted (to a temporary file, deleted afterwards) and inspected.
    """
    info = inspect_envelope(envelope_path)
    matching = [r for r in info.recipients if r.matches(recipient_cert_der)]
    if not matching:
        raise RecipientMismatch("no RecipientInfo in the envelope addresses this tender key")
    recipient = matching[0]
    if recipient.key_encryption != "rsaes_oaep":
        raise AlgorithmRefused(
            f"key transport {recipient.key_encryption} is refused; only RSAES-OAEP is accepted"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    plain_path = _temporary(work_dir, ".opened.p7s")
    try:
        with plain_path.open("wb") as dst:
            decrypt_envelope(envelope_path, info, recipient, key_transport, dst)
        try:
            facts, offset, length = verify_attached_file(plain_path)
        except (SignatureInvalid, SignatureMalformed, AlgorithmRefused) as exc:
            raise InnerSignatureInvalid(
                f"the package signature inside the envelope: {exc.message}", cause=exc.code
            ) from exc
        with FileSlice(plain_path, offset, length) as package:
            opened = read_package(package, limits)
        reports: dict[str, object] = {}
        if inspect_pdf is not None:
            reports = _inspect_pdfs(plain_path, offset, length, opened, work_dir, inspect_pdf)
    finally:
        plain_path.unlink(missing_ok=True)
    return OpenedBid(inner=facts, package=opened, pdf_reports=reports)


def _inspect_pdfs(
    plain_path: Path,
    offset: int,
    length: int,
    opened: OpenedPackage,
    work_dir: Path,
    inspect_pdf: PdfInspector,
) -> dict[str, object]:
    """Extract each PDF document (already checked by ``read_package``'s limits) to a
    temporary file, hand it to ``inspect_pdf`` and delete it."""
    reports: dict[str, object] = {}
    names = [d.name for d in opened.documents if d.name.lower().endswith(".pdf")]
    if not names:
        return reports
    with FileSlice(plain_path, offset, length) as package, zipfile.ZipFile(package) as archive:
        for name in names:
            extracted = _temporary(work_dir, ".pdf")
            try:
                with archive.open(name) as src, extracted.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                reports[name] = inspect_pdf(extracted)
            finally:
                extracted.unlink(missing_ok=True)
    return reports
