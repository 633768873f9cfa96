"""The signed opening-record PDF: PAdES B-T made with the platform receipt key on the
SoftHSM token through pyhanko's PKCS11Signer, a document time stamp from an HTTP TSA on
127.0.0.1, validated by pyhanko and, independently, by the openssl CLI."""

from __future__ import annotations

import hashlib
import io
import socket
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.embed import EmbeddedFileObject, FileSpec
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import HTTPTimeStamper

from sealed_bid.devpki import DevPki
from sealed_bid.errors import ConfigError, TimestampUnavailable
from sealed_bid.hsm.token import AUDIT_KEY, RECEIPT_KEY, Token
from sealed_bid.records.pades import sign_record_pdf, validate_record_pdf
from sealed_bid.records.pdf_render import ATTACHMENT_NAME
from sealed_bid.timestamping.dev_tsa import DevTsaFiles
from tests.records.conftest import (
    PlatformSigner,
    Tsa,
    attached_files,
    serve_tsa,
)

pytestmark = pytest.mark.token


def _validate(pdf: bytes, platform_signer: PlatformSigner, tsa: Tsa) -> object:
    return validate_record_pdf(
        pdf, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )


def test_the_signed_record_validates_with_both_time_stamps(
    signed_record: bytes,
    platform_signer: PlatformSigner,
    tsa: Tsa,
    record_json: str,
    session_start: datetime,
) -> None:
    result = validate_record_pdf(
        signed_record, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert result.ok, result.problems
    assert (result.intact, result.valid, result.trusted, result.pades) == (True,) * 4
    assert (
        result.signer_certificate_sha256
        == hashlib.sha256(platform_signer.certificate_der).hexdigest()
    )
    assert "platform-receipt" in (result.signer_subject or "")
    # The signature is followed only by the document time stamp, which covers everything.
    assert result.coverage == "ENTIRE_REVISION"
    assert result.modification_level == "LTA_UPDATES"
    assert result.document_timestamp_coverage == "ENTIRE_FILE"
    signature_ts, document_ts = result.signature_timestamp, result.document_timestamp
    assert signature_ts is not None and signature_ts.ok
    assert document_ts is not None and document_ts.ok
    tsa_sha256 = hashlib.sha256(tsa.certificate_der).hexdigest()
    assert signature_ts.tsa_certificate_sha256 == document_ts.tsa_certificate_sha256 == tsa_sha256
    assert result.signing_time == signature_ts.time
    assert session_start <= signature_ts.time <= document_ts.time


def test_the_signed_pdf_carries_the_exact_record_json(
    signed_record: bytes, platform_signer: PlatformSigner, tsa: Tsa, record_json: str
) -> None:
    result = validate_record_pdf(
        signed_record, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert result.record_json == record_json
    assert result.record_sha256 == hashlib.sha256(record_json.encode("utf-8")).hexdigest()
    assert attached_files(signed_record)[ATTACHMENT_NAME] == record_json.encode("utf-8")


def test_one_changed_byte_in_the_signed_range_breaks_integrity(
    signed_record: bytes, platform_signer: PlatformSigner, tsa: Tsa
) -> None:
    offset = signed_record.index(b"ReportLab Generated PDF document")
    tampered = bytearray(signed_record)
    tampered[offset] ^= 0x01
    result = validate_record_pdf(
        bytes(tampered), trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert result.signature_found
    assert not result.intact
    assert not result.trusted
    assert result.document_timestamp is not None and not result.document_timestamp.intact
    assert not result.ok


def test_a_root_that_did_not_issue_the_signer_is_not_trusted(
    signed_record: bytes, dev_pki: DevPki, tsa: Tsa
) -> None:
    other_root = x509.load_pem_x509_certificate(dev_pki.bidder_root.cert.read_bytes())
    result = validate_record_pdf(
        signed_record,
        trust_roots_der=[other_root.public_bytes(serialization.Encoding.DER)],
        tsa_roots_der=[tsa.root_der],
    )
    assert result.intact and result.valid
    assert not result.trusted
    assert not result.ok
    assert any("not trusted" in problem for problem in result.problems)


def test_time_stamps_from_an_untrusted_authority_fail_the_record(
    signed_record: bytes, platform_signer: PlatformSigner
) -> None:
    result = validate_record_pdf(
        signed_record,
        trust_roots_der=[platform_signer.root_der],
        tsa_roots_der=[platform_signer.root_der],
    )
    assert result.trusted
    assert result.signature_timestamp is not None and not result.signature_timestamp.trusted
    assert result.document_timestamp is not None and not result.document_timestamp.trusted
    assert not result.ok


def test_an_update_that_swaps_the_attachment_neither_changes_the_record_nor_passes(
    signed_record: bytes, platform_signer: PlatformSigner, tsa: Tsa, record_json: str
) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(signed_record))
    names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    forged = EmbeddedFileObject.from_file_data(writer, data=b'{"forged":true}')
    spec = FileSpec(file_spec_string=ATTACHMENT_NAME, embedded_data=forged)
    names[1] = writer.add_object(spec.as_pdf_object())
    writer.update_container(names)
    out = io.BytesIO()
    writer.write(out)
    updated = out.getvalue()
    assert attached_files(updated)[ATTACHMENT_NAME] == b'{"forged":true}'

    result = validate_record_pdf(
        updated, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert result.intact and result.valid and result.trusted
    assert result.record_json == record_json
    assert result.document_timestamp_coverage == "ENTIRE_REVISION"
    assert not result.ok


def test_without_a_timestamper_the_record_is_signed_pades_b_b(
    record_pdf: bytes, records_token: Token, platform_signer: PlatformSigner, tsa: Tsa
) -> None:
    signed = sign_record_pdf(
        record_pdf,
        token=records_token,
        key_label=RECEIPT_KEY,
        certificate_der=platform_signer.certificate_der,
        chain_der=platform_signer.chain_der,
        timestamper=None,
    )
    result = validate_record_pdf(
        signed, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert result.ok, result.problems
    assert result.signature_timestamp is None and result.document_timestamp is None
    assert result.coverage == "ENTIRE_FILE"
    assert result.signing_time is not None  # as the signer claims (/M), no time stamp


def test_the_token_lock_is_free_while_the_tsa_is_asked(
    record_pdf: bytes,
    records_token: Token,
    platform_signer: PlatformSigner,
    tsa_files: DevTsaFiles,
) -> None:
    """The TSA answers only after it has itself signed on the token: if signing held the
    token's lock across the HTTP request, this would wait until the client gave up."""
    signed_meanwhile: list[bytes] = []

    def sign_on_the_token() -> None:
        signed_meanwhile.append(records_token.sign(RECEIPT_KEY, b"a receipt meanwhile"))

    with serve_tsa(tsa_files, before_reply=sign_on_the_token) as slow_tsa:
        signed = sign_record_pdf(
            record_pdf,
            token=records_token,
            key_label=RECEIPT_KEY,
            certificate_der=platform_signer.certificate_der,
            chain_der=platform_signer.chain_der,
            timestamper=slow_tsa.timestamper(),
        )
    assert signed_meanwhile  # the TSA was asked (more than once) and signed each time
    result = validate_record_pdf(
        signed, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[slow_tsa.root_der]
    )
    assert result.ok, result.problems


def test_an_unreachable_tsa_is_timestamp_unavailable(
    record_pdf: bytes, records_token: Token, platform_signer: PlatformSigner
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TimestampUnavailable):
        sign_record_pdf(
            record_pdf,
            token=records_token,
            key_label=RECEIPT_KEY,
            certificate_der=platform_signer.certificate_der,
            chain_der=platform_signer.chain_der,
            timestamper=HTTPTimeStamper(f"http://127.0.0.1:{port}/tsa", timeout=5),
        )


def test_a_certificate_of_another_key_is_refused(
    record_pdf: bytes, records_token: Token, platform_signer: PlatformSigner
) -> None:
    with pytest.raises(ConfigError, match="does not belong"):
        sign_record_pdf(
            record_pdf,
            token=records_token,
            key_label=AUDIT_KEY,
            certificate_der=platform_signer.certificate_der,
            chain_der=platform_signer.chain_der,
            timestamper=None,
        )


@pytest.mark.parametrize("label", ["tender:T-2026-001", "platform-bidder-tag", "nonexistent"])
def test_only_platform_signing_keys_sign_records(
    record_pdf: bytes, records_token: Token, platform_signer: PlatformSigner, label: str
) -> None:
    with pytest.raises(ValueError, match="not a platform signing key"):
        sign_record_pdf(
            record_pdf,
            token=records_token,
            key_label=label,
            certificate_der=platform_signer.certificate_der,
            chain_der=platform_signer.chain_der,
            timestamper=None,
        )


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a pdf", b"%PDF-1.7\n1 0 obj\n<<\n", b"%PDF-1.4\n" + b"\x00" * 4096],
)
def test_garbage_is_reported_not_raised(
    garbage: bytes, platform_signer: PlatformSigner, tsa: Tsa
) -> None:
    result = validate_record_pdf(
        garbage, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert not result.ok
    assert not result.signature_found
    assert result.problems and all(len(p) <= 300 for p in result.problems)


def test_an_unsigned_record_is_reported_as_unsigned(
    record_pdf: bytes, platform_signer: PlatformSigner, tsa: Tsa
) -> None:
    result = validate_record_pdf(
        record_pdf, trust_roots_der=[platform_signer.root_der], tsa_roots_der=[tsa.root_der]
    )
    assert not result.ok
    assert result.problems == ("the PDF carries no signature",)


# --- A second, independent tool: the openssl CLI ------------------------------------------
def _pem(path: Path, der: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return path


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )


def _signed_ranges(pdf: bytes, byte_range: list[int]) -> bytes:
    start1, length1, start2, length2 = byte_range
    return pdf[start1 : start1 + length1] + pdf[start2 : start2 + length2]


@pytest.mark.openssl
def test_openssl_verifies_the_signature_and_both_time_stamps(
    signed_record: bytes, platform_signer: PlatformSigner, tsa: Tsa, tmp_path: Path
) -> None:
    reader = PdfFileReader(io.BytesIO(signed_record))
    (signature,) = reader.embedded_regular_signatures
    (document_ts,) = reader.embedded_timestamp_signatures
    platform_root = _pem(tmp_path / "platform-root.pem", platform_signer.root_der)
    tsa_root = _pem(tmp_path / "tsa-root.pem", tsa.root_der)

    # The PAdES signature: CMS over the two signed byte ranges, chained to the root.
    content = tmp_path / "signed-ranges.bin"
    content.write_bytes(_signed_ranges(signed_record, [int(v) for v in signature.byte_range]))
    signed_data = cms.ContentInfo.load(signature.pkcs7_content)
    (tmp_path / "signature.der").write_bytes(signed_data.dump())
    verified = _openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "signature.der",
        "-content", content, "-CAfile", platform_root, "-purpose", "any", "-out", "/dev/null",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "Verification successful" in verified.stderr

    # Its signature time stamp: a token over the signature value.
    signer_info = signed_data["content"]["signer_infos"][0]
    (attribute,) = [
        a for a in signer_info["unsigned_attrs"] if a["type"].native == "signature_time_stamp_token"
    ]
    (tmp_path / "signature-ts.der").write_bytes(attribute["values"][0].dump())
    (tmp_path / "signature-value.bin").write_bytes(signer_info["signature"].native)
    verified = _openssl(
        "ts", "-verify", "-data", tmp_path / "signature-value.bin", "-in",
        tmp_path / "signature-ts.der", "-token_in", "-CAfile", tsa_root,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr + verified.stdout
    assert "Verification: OK" in verified.stdout

    # The document time stamp: a token over the byte ranges of the whole signed file.
    stamped = tmp_path / "stamped-ranges.bin"
    stamped.write_bytes(_signed_ranges(signed_record, [int(v) for v in document_ts.byte_range]))
    (tmp_path / "document-ts.der").write_bytes(
        cms.ContentInfo.load(document_ts.pkcs7_content).dump()
    )
    verified = _openssl(
        "ts", "-verify", "-data", stamped, "-in", tmp_path / "document-ts.der", "-token_in",
        "-CAfile", tsa_root,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr + verified.stdout
    assert "Verification: OK" in verified.stdout
