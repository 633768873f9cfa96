"""Real components for the record-PDF tests, built once per session: the hsm tests'
SoftHSM token (platform keys ensured), the development PKI with the receipt key certified
by the dev platform root, and the development RFC 3161 time-stamping authority served
over HTTP on 127.0.0.1 (``timestamping.dev_tsa``), reached with pyhanko's own
HTTPTimeStamper, as the service will."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import HTTPTimeStamper

from sealed_bid.config import Settings
from sealed_bid.devpki import DevPki, issue_platform_certs, make_dev_pki
from sealed_bid.domain.opening_record import (
    BidderEntry,
    BidRow,
    DocumentEntry,
    NotOpenedBid,
    OpeningRecord,
)
from sealed_bid.hsm.token import RECEIPT_KEY, Token
from sealed_bid.records.pades import sign_record_pdf
from sealed_bid.records.pdf_render import render_record_pdf
from sealed_bid.timestamping.dev_tsa import (
    DevTsaFiles,
    DevTsaServer,
    load_dev_tsa_signer,
    make_dev_tsa,
)

GENERATED_AT = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Tsa:
    url: str
    root_der: bytes
    certificate_der: bytes

    def timestamper(self) -> HTTPTimeStamper:
        return HTTPTimeStamper(self.url, timeout=10)


@dataclass(frozen=True)
class PlatformSigner:
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    root_der: bytes


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


@pytest.fixture(scope="session")
def records_token(hsm_settings: Settings) -> Iterator[Token]:
    with Token.open(hsm_settings) as token:
        token.ensure_platform_keys()
        yield token


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory, session_start: datetime) -> DevPki:
    return make_dev_pki(tmp_path_factory.mktemp("records-pki"), session_start)


@pytest.fixture(scope="session")
def platform_signer(
    dev_pki: DevPki, records_token: Token, session_start: datetime
) -> PlatformSigner:
    """The receipt key's certificate, issued as the dev set-up issues it."""
    paths = issue_platform_certs(
        dev_pki, {RECEIPT_KEY: records_token.public_key(RECEIPT_KEY)}, session_start
    )
    root = _der(dev_pki.platform_root.cert)
    return PlatformSigner(
        certificate_der=_der(paths[RECEIPT_KEY]), chain_der=(root,), root_der=root
    )


@pytest.fixture(scope="session")
def tsa_files(tmp_path_factory: pytest.TempPathFactory, session_start: datetime) -> DevTsaFiles:
    return make_dev_tsa(tmp_path_factory.mktemp("records-tsa"), session_start)


@contextmanager
def serve_tsa(files: DevTsaFiles, before_reply: Callable[[], None] | None = None) -> Iterator[Tsa]:
    """The dev TSA (``timestamping.dev_tsa``) over HTTP on 127.0.0.1; ``before_reply``
    runs in the server thread, while the client waits, before each token is made."""

    def clock() -> datetime:
        if before_reply is not None:
            before_reply()
        return datetime.now(UTC)

    with DevTsaServer(load_dev_tsa_signer(files), clock=clock) as server:
        yield Tsa(url=server.url, root_der=files.root_der(), certificate_der=files.cert_der())


@pytest.fixture(scope="session")
def tsa(tsa_files: DevTsaFiles) -> Iterator[Tsa]:
    with serve_tsa(tsa_files) as served:
        yield served


def sample_record_json() -> str:
    """An opening record with an opened bid (Chinese names), a failed one and a replaced
    envelope, as the domain publishes it."""
    received = datetime(2026, 11, 25, 16, 4, 49, 53934, tzinfo=UTC)
    record = OpeningRecord(
        tender_id="T-2026-001",
        title="开封市道路工程 Road works, lot 1",
        deadline=datetime(2026, 11, 25, 16, 7, 39, tzinfo=UTC),
        opening_time=datetime(2026, 11, 25, 16, 8, 39, tzinfo=UTC),
        opened_at=datetime(2026, 11, 25, 16, 8, 44, 594873, tzinfo=UTC),
        bids=(
            BidRow(
                bid_id="bid-9fc80b5752669f906a949593",
                log_sequence=2,
                envelope_sha256="37dd780d" * 8,
                size=2577,
                received_at=received,
                status="OPENED",
                bidder=BidderEntry(
                    organisation="开封阿尔法建设有限公司",
                    common_name="Alpha Construction Co., Ltd.",
                    credit_code="91410200MA00000013",
                    certificate_sha256="38cbd48c" * 8,
                ),
                form={
                    "bidder_name": "开封阿尔法建设有限公司",
                    "currency": "CNY",
                    "duration_days": 180,
                    "fields": {"lot": "1", "备注": "含税 incl. VAT"},
                    "format": "sealed-bid/bid-form/v1",
                    "price": "1234567.89",
                    "tender_id": "T-2026-001",
                },
                inner_signing_time=received - timedelta(seconds=1),
                package_sha256="7cd8f492" * 8,
                documents=(
                    DocumentEntry(name="技术标.pdf", size=6, sha256="01ebe741" * 8),
                    DocumentEntry(name="offer.txt", size=6, sha256="02ebe741" * 8),
                ),
            ),
            BidRow(
                bid_id="bid-2",
                log_sequence=3,
                envelope_sha256="bb" * 32,
                size=100,
                received_at=received,
                status="DECRYPTION_FAILED",
                reason="the AES-GCM tag did not verify",
                bidder=BidderEntry(
                    organisation="Beta Engineering Co., Ltd.",
                    common_name="Beta Engineering Co., Ltd.",
                    credit_code=None,
                    certificate_sha256="aa" * 32,
                ),
            ),
        ),
        not_opened=(NotOpenedBid(bid_id="bid-0", envelope_sha256="cc" * 32, status="REPLACED"),),
    )
    return record.to_json().decode("utf-8")


@pytest.fixture(scope="session")
def record_json() -> str:
    return sample_record_json()


@pytest.fixture(scope="session")
def record_pdf(record_json: str) -> bytes:
    return render_record_pdf(record_json, generated_at=GENERATED_AT)


@pytest.fixture(scope="session")
def signed_record(
    record_pdf: bytes, records_token: Token, platform_signer: PlatformSigner, tsa: Tsa
) -> bytes:
    """The record PDF signed on the token, with both time stamps from the HTTP TSA."""
    return sign_record_pdf(
        record_pdf,
        token=records_token,
        key_label=RECEIPT_KEY,
        certificate_der=platform_signer.certificate_der,
        chain_der=platform_signer.chain_der,
        timestamper=tsa.timestamper(),
        location="Kaifeng",
    )


def attached_files(pdf: bytes) -> dict[str, bytes]:
    """The embedded files of the last revision, by name."""
    reader = PdfFileReader(io.BytesIO(pdf))
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    return {
        str(names[i]): names[i + 1].get_object()["/EF"]["/F"].get_object().data
        for i in range(0, len(names), 2)
    }
