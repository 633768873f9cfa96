"""Signatures inside a bidder's PDF, as reported at the opening: signed with software keys
of the development bidder PKI (pyhanko's SimpleSigner), validated against the dev bidder
root; unsigned, corrupt, oversized and mutated files never raise."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore
from reportlab.pdfgen import canvas

from sealed_bid.devpki import BidderFiles, DevPki
from sealed_bid.records.bid_pdfs import validate_bid_pdf
from tests.records.conftest import Tsa

LIMIT = 1 << 20


def _certificates(path: Path) -> list[asn1_x509.Certificate]:
    return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(path.read_bytes(), True)]


def _software_signer(bidder: BidderFiles) -> signers.SimpleSigner:
    key = serialization.load_pem_private_key(bidder.key.read_bytes(), password=None)
    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (certificate,) = _certificates(bidder.cert)
    return signers.SimpleSigner(
        signing_cert=certificate,
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs(
            [certificate, *_certificates(bidder.chain)]
        ),
    )


def _document(text: str) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, invariant=1, pageCompression=0)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return out.getvalue()


def _sign(
    pdf: bytes,
    bidder: BidderFiles,
    *,
    pades: bool = True,
    timestamper: object | None = None,
    field: str = "BidderSignature",
) -> bytes:
    metadata = signers.PdfSignatureMetadata(
        field_name=field,
        md_algorithm="sha256",
        subfilter=(
            fields.SigSeedSubFilter.PADES if pades else fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED
        ),
    )
    out = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)),
        metadata,
        signer=_software_signer(bidder),
        timestamper=timestamper,
    )
    data: bytes = out.getvalue()
    return data


@pytest.fixture(scope="module")
def bidder_roots(dev_pki: DevPki) -> list[bytes]:
    root = x509.load_pem_x509_certificate(dev_pki.bidder_root.cert.read_bytes())
    return [root.public_bytes(serialization.Encoding.DER)]


@pytest.fixture(scope="module")
def signed_by_alpha(dev_pki: DevPki) -> bytes:
    return _sign(_document("Technical offer, lot 1"), dev_pki.bidders["alpha"])


def _write(tmp_path: Path, data: bytes, name: str = "document.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_pades_signature_by_a_bidder_of_a_trusted_ca_is_trusted(
    signed_by_alpha: bytes,
    bidder_roots: list[bytes],
    dev_pki: DevPki,
    tmp_path: Path,
    session_start: datetime,
) -> None:
    (entry,) = validate_bid_pdf(
        _write(tmp_path, signed_by_alpha), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert entry.status == "trusted"
    assert (entry.intact, entry.valid, entry.trusted, entry.pades) == (True,) * 4
    assert entry.kind == "signature"
    assert entry.field_name == "BidderSignature"
    assert entry.signer_common_name == dev_pki.bidders["alpha"].company
    assert entry.signer_organisation == dev_pki.bidders["alpha"].company
    assert entry.coverage == "ENTIRE_FILE"
    assert entry.modification_level == "NONE"
    assert entry.signing_time_source == "signer"
    assert entry.signing_time is not None and entry.signing_time >= session_start
    assert entry.error is None


def test_a_legacy_pkcs7_signature_with_an_ec_key_is_reported_as_not_pades(
    dev_pki: DevPki, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    signed = _sign(_document("Offer"), dev_pki.bidders["beta"], pades=False)
    (entry,) = validate_bid_pdf(
        _write(tmp_path, signed), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert entry.status == "trusted"
    assert not entry.pades
    assert entry.signer_common_name == dev_pki.bidders["beta"].company


def test_a_signer_from_a_ca_outside_the_roots_is_untrusted(
    dev_pki: DevPki, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    signed = _sign(_document("Offer"), dev_pki.bidders["untrusted"])
    (entry,) = validate_bid_pdf(
        _write(tmp_path, signed), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert entry.status == "untrusted"
    assert entry.intact and entry.valid and not entry.trusted


def test_no_roots_trust_nothing(signed_by_alpha: bytes, tmp_path: Path) -> None:
    (entry,) = validate_bid_pdf(
        _write(tmp_path, signed_by_alpha), trust_roots_der=[], max_bytes=LIMIT
    )
    assert entry.status == "untrusted"


def test_a_changed_byte_in_the_signed_range_is_invalid(
    signed_by_alpha: bytes, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    tampered = signed_by_alpha.replace(b"Technical offer, lot 1", b"Technical offer, lot 2")
    assert tampered != signed_by_alpha
    (entry,) = validate_bid_pdf(
        _write(tmp_path, tampered), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert entry.status == "invalid"
    assert not entry.intact


def test_two_signatures_and_a_document_time_stamp_are_all_listed(
    signed_by_alpha: bytes,
    dev_pki: DevPki,
    bidder_roots: list[bytes],
    tsa: Tsa,
    tmp_path: Path,
) -> None:
    cosigned = _sign(
        signed_by_alpha, dev_pki.bidders["gamma"], timestamper=tsa.timestamper(), field="Second"
    )
    stamped = signers.PdfTimeStamper(tsa.timestamper(), field_name="Stamp").timestamp_pdf(
        IncrementalPdfFileWriter(io.BytesIO(cosigned)), "sha256"
    )
    entries = validate_bid_pdf(
        _write(tmp_path, stamped.getvalue()), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert [e.field_name for e in entries] == ["BidderSignature", "Second", "Stamp"]
    assert [e.kind for e in entries] == ["signature", "signature", "document_timestamp"]
    first, second, stamp = entries
    assert first.status == second.status == "trusted"
    assert first.coverage == "ENTIRE_REVISION"
    assert first.modification_level == "FORM_FILLING"  # a second signature, nothing else
    assert second.signing_time_source == "timestamp"
    assert stamp.coverage == "ENTIRE_FILE"
    # The TSA is not among the bidder roots given.
    assert stamp.status == "untrusted" and stamp.intact and stamp.valid
    assert stamp.signer_common_name == "Sealed Bid Dev TSA"


def test_an_unsigned_pdf_has_no_entries(bidder_roots: list[bytes], tmp_path: Path) -> None:
    path = _write(tmp_path, _document("No signature here"))
    assert validate_bid_pdf(path, trust_roots_der=bidder_roots, max_bytes=LIMIT) == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"PK\x03\x04 this is a zip, not a pdf",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog",
        b"%PDF-1.4\ntrailer\n<< /Root 1 0 R /Size 99999999999 >>\n%%EOF\n",
    ],
)
def test_a_corrupt_file_is_one_unreadable_entry(
    content: bytes, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    (entry,) = validate_bid_pdf(
        _write(tmp_path, content), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert entry.status == "unreadable"
    assert entry.error and len(entry.error) <= 300
    assert not (entry.intact or entry.valid or entry.trusted)


def test_a_truncated_signed_pdf_does_not_raise(
    signed_by_alpha: bytes, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    truncated = signed_by_alpha[: len(signed_by_alpha) * 2 // 3]
    entries = validate_bid_pdf(
        _write(tmp_path, truncated), trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert all(entry.status != "trusted" for entry in entries)


def test_a_file_over_the_limit_is_not_parsed(
    signed_by_alpha: bytes, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    path = _write(tmp_path, signed_by_alpha)
    limit = len(signed_by_alpha) - 1
    (entry,) = validate_bid_pdf(path, trust_roots_der=bidder_roots, max_bytes=limit)
    assert entry.status == "unreadable"
    assert entry.error == f"larger than the limit of {limit} bytes"
    exact = validate_bid_pdf(path, trust_roots_der=bidder_roots, max_bytes=len(signed_by_alpha))
    assert [e.status for e in exact] == ["trusted"]


def test_a_missing_file_is_unreadable(bidder_roots: list[bytes], tmp_path: Path) -> None:
    (entry,) = validate_bid_pdf(
        tmp_path / "absent.pdf", trust_roots_der=bidder_roots, max_bytes=LIMIT
    )
    assert entry.status == "unreadable"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_signed_pdfs_never_raise(
    data: st.DataObject, signed_by_alpha: bytes, bidder_roots: list[bytes], tmp_path: Path
) -> None:
    mutated = bytearray(signed_by_alpha)
    for _ in range(data.draw(st.integers(1, 8))):
        offset = data.draw(st.integers(0, len(mutated) - 1))
        mutated[offset] = data.draw(st.integers(0, 255))
    entries = validate_bid_pdf(
        _write(tmp_path, bytes(mutated), "mutated.pdf"),
        trust_roots_der=bidder_roots,
        max_bytes=LIMIT,
    )
    for entry in entries:
        assert entry.status in ("trusted", "untrusted", "invalid", "unreadable")
        assert entry.error is None or len(entry.error) <= 300
