"""Item 5 against the running service: every malformed, oversized, late, wrongly signed or
wrongly addressed submission gets one specific gRPC status and stable code, nothing is
stored (no bid row, no audit entry, no blob, no leftover in the blob store's tmp), the
server stays up, and the accepted bid already in the tender opens intact at the end.

Each refused request carries exactly one fault; everything else about it is valid (a
real envelope sealed to the right tender, signed by a good bidder at the service time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealed_bid.cli.common import load_signer
from sealed_bid.crypto.seal import seal_bid
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc
from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import (
    Envelope,
    assert_abandoned_not_failed,
    assert_refused,
    blob_files,
    chunk,
    header,
    settled,
    sign_as,
    stored,
    trailer,
    whole,
)

pytestmark = [pytest.mark.server, pytest.mark.token]


@pytest.fixture(scope="module")
def tender(service: Service) -> pb.Tender:
    return new_tender(service)


@pytest.fixture(scope="module")
def other_tender(service: Service) -> pb.Tender:
    """A second tender, small: its envelope limit is 1024 bytes."""
    return new_tender(service, max_envelope_bytes=1024)


@pytest.fixture(scope="module")
def alpha_accepted(
    service: Service, tender: pb.Tender, tmp_path_factory: pytest.TempPathFactory
) -> pb.Receipt:
    sealed = seal_for(service, tender, "alpha", tmp_path_factory.mktemp("alpha"), price="777.00")
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt


@pytest.fixture(scope="module")
def beta(
    service: Service,
    tender: pb.Tender,
    alpha_accepted: pb.Receipt,
    tmp_path_factory: pytest.TempPathFactory,
) -> Envelope:
    """A valid, never accepted envelope for ``tender`` (the base every fault is made on);
    it depends on ``alpha_accepted`` so every refusal runs with a bid in the tender."""
    return Envelope.of(seal_for(service, tender, "beta", tmp_path_factory.mktemp("beta")))


# --- The stream ---------------------------------------------------------------------------
def test_a_bid_after_the_deadline_is_refused_with_BID_LATE(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    start = service.clock.now()
    service.clock.set(tender.deadline.ToDatetime(tzinfo=UTC))
    service.clock.advance(timedelta(seconds=1))
    try:
        late = sign_as(service, "beta", beta.data)  # signed now, so only lateness is wrong
        assert_refused(
            service,
            tender.tender_id,
            lambda: service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, late))),
            "BID_LATE",
            "FAILED_PRECONDITION",
        )
    finally:
        service.clock.set(start)


def test_a_stream_that_starts_before_and_ends_after_the_deadline_is_BID_LATE(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    start = service.clock.now()
    half = len(beta.data) // 2

    def crossing_the_deadline() -> Iterator[pb.SubmitBidRequest]:
        yield header(tender.tender_id, len(beta.data))
        yield chunk(beta.data[:half])
        service.clock.advance(timedelta(hours=1, seconds=1))  # the deadline passes mid-stream
        yield chunk(beta.data[half:])
        yield trailer(hashlib.sha256(beta.data).digest(), beta.signature)

    try:
        assert_refused(
            service,
            tender.tender_id,
            lambda: service.bidder.submit_stream(crossing_the_deadline()),
            "BID_LATE",
            "FAILED_PRECONDITION",
        )
    finally:
        service.clock.set(start)


def test_a_bid_exactly_at_the_deadline_is_accepted(service: Service, tmp_path: Path) -> None:
    edge = new_tender(service, deadline_in=timedelta(minutes=10))
    start = service.clock.now()
    service.clock.set(edge.deadline.ToDatetime(tzinfo=UTC))
    try:
        sealed = seal_for(service, edge, "gamma", tmp_path)
        result = service.bidder.submit_bid(
            edge.tender_id, sealed.envelope_path, sealed.outer_signature_der
        )
        assert result.receipt.content.envelope_sha256 == sealed.sha256
    finally:
        service.clock.set(start)


def test_an_unknown_tender_is_refused_with_TENDER_NOT_FOUND(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(whole("T-NO-SUCH", beta.data, beta.signature))),
        "TENDER_NOT_FOUND",
        "NOT_FOUND",
    )


def test_a_declared_size_over_the_tenders_limit_is_ENVELOPE_TOO_LARGE(
    service: Service, other_tender: pb.Tender
) -> None:
    limit = other_tender.max_envelope_bytes
    assert limit == 1024
    data = b"\0" * (limit + 1)
    assert_refused(
        service,
        other_tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(whole(other_tender.tender_id, data, sign_as(service, "beta", data)))
        ),
        "ENVELOPE_TOO_LARGE",
        "RESOURCE_EXHAUSTED",
    )


def test_a_declared_size_exactly_at_the_tenders_limit_passes_the_size_check(
    service: Service, other_tender: pb.Tender
) -> None:
    # limit bytes of zeros: past every size check, refused only for not being DER.
    data = b"\0" * other_tender.max_envelope_bytes
    assert_refused(
        service,
        other_tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(whole(other_tender.tender_id, data, sign_as(service, "beta", data)))
        ),
        "ENVELOPE_NOT_DER",
        "INVALID_ARGUMENT",
    )


def test_more_bytes_than_declared_is_SIZE_MISMATCH(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    stream = whole(tender.tender_id, beta.data, beta.signature)
    stream[0] = header(tender.tender_id, len(beta.data) - 1)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(stream)),
        "SIZE_MISMATCH",
        "INVALID_ARGUMENT",
    )


def test_fewer_bytes_than_declared_is_SIZE_MISMATCH(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    stream = whole(tender.tender_id, beta.data, beta.signature)
    stream[0] = header(tender.tender_id, len(beta.data) + 1)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(stream)),
        "SIZE_MISMATCH",
        "INVALID_ARGUMENT",
    )


def test_a_chunk_over_the_chunk_limit_is_CHUNK_TOO_LARGE(
    service: Service, tender: pb.Tender
) -> None:
    # The gRPC message limit is the chunk limit plus 4 KiB of slack, so a chunk one byte
    # over the chunk limit reaches the service, which refuses it with its own code.
    limit = service.settings.limits.max_chunk_bytes
    data = b"\0" * (limit + 1)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(
                [
                    header(tender.tender_id, len(data)),
                    chunk(data),
                    trailer(hashlib.sha256(data).digest(), sign_as(service, "beta", data)),
                ]
            )
        ),
        "CHUNK_TOO_LARGE",
        "RESOURCE_EXHAUSTED",
    )


def test_a_chunk_of_exactly_the_chunk_limit_passes_the_chunk_check(
    service: Service, tender: pb.Tender
) -> None:
    data = b"\0" * service.settings.limits.max_chunk_bytes
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(
                [
                    header(tender.tender_id, len(data)),
                    chunk(data),
                    trailer(hashlib.sha256(data).digest(), sign_as(service, "beta", data)),
                ]
            )
        ),
        "ENVELOPE_NOT_DER",
        "INVALID_ARGUMENT",
    )


def test_a_message_over_the_grpc_limit_is_refused_by_the_transport(
    service: Service, tender: pb.Tender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sealed_bid.api")
    # Past the chunk limit plus its 4 KiB of slack, grpc refuses the message itself:
    # RESOURCE_EXHAUSTED without a Sealed Bid code (the client reports GRPC_<status>).
    data = b"\0" * (service.settings.limits.max_chunk_bytes + 8192)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(
                [
                    header(tender.tender_id, len(data)),
                    chunk(data),
                    trailer(hashlib.sha256(data).digest(), sign_as(service, "beta", data)),
                ]
            )
        ),
        "GRPC_RESOURCE_EXHAUSTED",
        "RESOURCE_EXHAUSTED",
    )
    assert_abandoned_not_failed(caplog)


def test_a_wrong_trailer_digest_is_DIGEST_MISMATCH(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    stream = whole(tender.tender_id, beta.data, beta.signature)
    stream[-1] = trailer(hashlib.sha256(beta.data + b"x").digest(), beta.signature)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(stream)),
        "DIGEST_MISMATCH",
        "INVALID_ARGUMENT",
    )


@pytest.mark.parametrize(
    "fault",
    [
        "empty stream",
        "no header",
        "two headers",
        "chunk after trailer",
        "message with no part",
        "zero declared size",
    ],
)
def test_an_out_of_order_stream_is_MALFORMED_REQUEST(
    service: Service, tender: pb.Tender, beta: Envelope, fault: str
) -> None:
    stream = whole(tender.tender_id, beta.data, beta.signature)
    if fault == "empty stream":
        stream = []
    elif fault == "no header":
        stream = stream[1:]
    elif fault == "two headers":
        stream.insert(1, stream[0])
    elif fault == "chunk after trailer":
        stream.append(chunk(b"\0"))
    elif fault == "message with no part":
        stream.insert(2, pb.SubmitBidRequest())
    else:
        stream[0] = header(tender.tender_id, 0)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(stream)),
        "MALFORMED_REQUEST",
        "INVALID_ARGUMENT",
    )


def test_a_stream_without_trailer_is_STREAM_INCOMPLETE(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    stream = whole(tender.tender_id, beta.data, beta.signature)[:-1]
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(stream)),
        "STREAM_INCOMPLETE",
        "ABORTED",
    )


def test_a_client_whose_request_stream_fails_half_way_leaves_nothing(
    service: Service, tender: pb.Tender, beta: Envelope, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sealed_bid.api")
    half = len(beta.data) // 2

    def failing() -> Iterator[pb.SubmitBidRequest]:
        yield header(tender.tender_id, len(beta.data))
        yield chunk(beta.data[:half])
        raise OSError("the bidder's disk went away")

    # grpc-python cancels the call when the request iterator raises and reports UNKNOWN
    # "Exception iterating requests!" from the client side: no server status, so no code.
    error = assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(failing()),
        "GRPC_UNKNOWN",
        "UNKNOWN",
    )
    assert "iterating requests" in error.message
    assert_abandoned_not_failed(caplog)


def test_a_client_that_cancels_half_way_leaves_nothing_and_the_server_stays_up(
    service: Service, tender: pb.Tender, beta: Envelope, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sealed_bid.api")
    before = stored(service, tender.tender_id)
    half = len(beta.data) // 2
    release = threading.Event()

    def stalling() -> Iterator[pb.SubmitBidRequest]:
        yield header(tender.tender_id, len(beta.data))
        yield chunk(beta.data[:half])
        release.wait(30)  # the bidder stalls mid-upload; the test cancels meanwhile

    root = service.pki.platform_root.cert.read_bytes()
    channel = grpc.secure_channel(
        f"127.0.0.1:{service.server.public_port}", grpc.ssl_channel_credentials(root)
    )
    try:
        call = rpc.BidSubmissionStub(channel).SubmitBid.future(stalling())
        # Wait (bounded) until the server holds the partial upload in the blob store's tmp.
        deadline = time.monotonic() + 10
        while blob_files(service)[1] == before.tmp and time.monotonic() < deadline:
            time.sleep(0.02)
        assert blob_files(service)[1] != before.tmp, "the upload never reached the server"
        assert call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
    finally:
        release.set()
        channel.close()
    assert settled(service, tender.tender_id, before) == before
    assert_abandoned_not_failed(caplog)
    # The server is still up: a normal submission on the shared client still works.
    assert service.bidder.get_tender(tender.tender_id).tender_id == tender.tender_id


# --- The envelope ----------------------------------------------------------------------
def _submit(service: Service, tender: pb.Tender, data: bytes, bidder: str = "beta") -> None:
    service.bidder.submit_stream(
        iter(whole(tender.tender_id, data, sign_as(service, bidder, data)))
    )


def test_random_bytes_are_ENVELOPE_NOT_DER(service: Service, tender: pb.Tender) -> None:
    data = bytes(range(256)) * 4  # 0x00 0x00: a zero-length element, then trailing bytes
    assert_refused(
        service,
        tender.tender_id,
        lambda: _submit(service, tender, data),
        "ENVELOPE_NOT_DER",
        "INVALID_ARGUMENT",
    )


def test_a_der_value_that_is_not_a_content_info_is_ENVELOPE_NOT_CMS(
    service: Service, tender: pb.Tender
) -> None:
    data = bytes.fromhex("3006020101020102")  # SEQUENCE { INTEGER 1, INTEGER 2 }
    assert_refused(
        service,
        tender.tender_id,
        lambda: _submit(service, tender, data),
        "ENVELOPE_NOT_CMS",
        "INVALID_ARGUMENT",
    )


def test_a_valid_envelope_with_trailing_bytes_is_ENVELOPE_NOT_DER(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    assert_refused(
        service,
        tender.tender_id,
        lambda: _submit(service, tender, beta.data + b"\0"),
        "ENVELOPE_NOT_DER",
        "INVALID_ARGUMENT",
    )


def test_a_signed_data_sent_as_envelope_is_ENVELOPE_WRONG_CONTENT_TYPE(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    assert_refused(
        service,
        tender.tender_id,
        lambda: _submit(service, tender, beta.signature),  # a SignedData, validly signed
        "ENVELOPE_WRONG_CONTENT_TYPE",
        "INVALID_ARGUMENT",
    )


def test_an_envelope_sealed_to_another_tender_is_RECIPIENT_MISMATCH(
    service: Service, tender: pb.Tender, other_tender: pb.Tender, tmp_path: Path
) -> None:
    sealed = seal_for(service, other_tender, "beta", tmp_path, tender_id=tender.tender_id)
    data = sealed.envelope_path.read_bytes()
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(whole(tender.tender_id, data, sealed.outer_signature_der))
        ),
        "RECIPIENT_MISMATCH",
        "INVALID_ARGUMENT",
    )


def test_oaep_with_sha256_which_the_token_cannot_open_is_ALGORITHM_REFUSED(
    service: Service, tender: pb.Tender, tmp_path: Path
) -> None:
    sealed = seal_for(service, tender, "beta", tmp_path)  # only for its package
    package = tmp_path / "package.zip"
    files = service.pki.bidders["beta"]
    sha256 = seal_bid(
        package,
        load_signer(files.key, files.cert),
        tender.tender_certificate,
        tmp_path / "sha256",
        oaep_hash="sha256",
        signing_time=service.clock.now(),
    )
    assert sealed.sha256 != sha256.sha256
    data = sha256.envelope_path.read_bytes()
    error = assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(whole(tender.tender_id, data, sha256.outer_signature_der))
        ),
        "ALGORITHM_REFUSED",
        "INVALID_ARGUMENT",
    )
    assert "sha256" in error.message


# --- Envelopes made by the openssl CLI ------------------------------------------------
def _openssl(*args: str | Path) -> bytes:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@pytest.fixture(scope="module")
def tender_pem(tender: pb.Tender, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tender-cert") / "tender.pem"
    cert = x509.load_der_x509_certificate(tender.tender_certificate)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def openssl_inner(
    service: Service, tender: pb.Tender, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An inner signature made by openssl alone (content for the openssl envelopes)."""
    work = tmp_path_factory.mktemp("openssl-inner")
    seal_for(service, tender, "delta", work)
    files = service.pki.bidders["delta"]
    inner = work / "inner.p7s"
    _openssl(
        "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
        "-in", work / "package.zip", "-signer", files.cert, "-inkey", files.key, "-out", inner,
    )  # fmt: skip
    return inner


OAEP_SHA1 = ("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha1")


@pytest.mark.openssl
@pytest.mark.parametrize(
    ("made_with", "code"),
    [
        (("-stream", "-aes-256-gcm", *OAEP_SHA1), "ENVELOPE_NOT_DER"),
        (("-aes-256-gcm",), "ALGORITHM_REFUSED"),  # PKCS#1 v1.5 key transport
        (("-aes-128-gcm", *OAEP_SHA1), "ALGORITHM_REFUSED"),
    ],
    ids=["BER-indefinite", "PKCS1v15-key-transport", "AES-128-GCM"],
)
def test_openssl_envelopes_the_tender_cannot_accept_are_refused(
    service: Service,
    tender: pb.Tender,
    tender_pem: Path,
    openssl_inner: Path,
    tmp_path: Path,
    made_with: tuple[str, ...],
    code: str,
) -> None:
    cipher = [a for a in made_with if a.startswith("-aes")]
    keyopts = [a for a in made_with if a not in cipher and a != "-stream"]
    stream = ["-stream"] if "-stream" in made_with else []
    envelope = tmp_path / "bid.p7m"
    _openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", *stream, *cipher,
        "-in", openssl_inner, "-out", envelope, "-recip", tender_pem, *keyopts,
    )  # fmt: skip
    assert_refused(
        service,
        tender.tender_id,
        lambda: _submit(service, tender, envelope.read_bytes(), "delta"),
        code,
        "INVALID_ARGUMENT",
    )


@pytest.mark.openssl
def test_a_bid_made_with_openssl_alone_is_accepted_and_opens(
    service: Service, tmp_path: Path
) -> None:
    """The positive control for the openssl refusals above: what they refuse is the one
    fault, not "made by openssl". Made exactly as docs/bid-format.md says."""
    own = new_tender(service)
    files = service.pki.bidders["delta"]
    cert = x509.load_der_x509_certificate(own.tender_certificate)
    tender_pem = tmp_path / "tender.pem"
    tender_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    form = {
        "format": "sealed-bid/bid-form/v1",
        "tender_id": own.tender_id,
        "bidder_name": files.company,
        "price": "4321.50",
        "currency": "EUR",
        "duration_days": 90,
        "fields": {"lot": "1"},
    }
    package = tmp_path / "package.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("bid.json", json.dumps(form))
        archive.writestr("offer.txt", "We offer to resurface the road.\n")
    inner, envelope, outer = tmp_path / "inner.p7s", tmp_path / "bid.p7m", tmp_path / "bid.p7s"
    # openssl stamps signingTime with the real time; the ManualClock started at the
    # session's real start, far inside the 15-minute skew the service allows.
    _openssl(
        "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
        "-in", package, "-signer", files.cert, "-inkey", files.key, "-out", inner,
    )  # fmt: skip
    _openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", "-aes-256-gcm",
        "-in", inner, "-out", envelope, "-recip", tender_pem, *OAEP_SHA1,
    )  # fmt: skip
    _openssl(
        "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
        "-in", envelope, "-signer", files.cert, "-inkey", files.key, "-out", outer,
    )  # fmt: skip
    result = service.bidder.submit_bid(own.tender_id, envelope, outer.read_bytes())
    assert (
        result.receipt.content.envelope_sha256 == hashlib.sha256(envelope.read_bytes()).hexdigest()
    )
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))
    try:
        record = json.loads(service.operator.open_tender(own.tender_id).record_json)
    finally:
        service.clock.set(start)
    [bid] = record["bids"]
    assert bid["status"] == "OPENED", bid.get("reason")
    assert bid["form"]["price"] == "4321.50"
    assert bid["bidder"]["organisation"] == files.company
    assert {d["name"] for d in bid["documents"]} == {"offer.txt"}


# --- The outer signature and its signer -------------------------------------------------
def test_a_signature_over_other_bytes_is_SIGNATURE_INVALID(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    signature = sign_as(service, "beta", beta.data + b"other")
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, signature))),
        "SIGNATURE_INVALID",
        "INVALID_ARGUMENT",
    )


def test_a_tampered_signature_value_is_SIGNATURE_INVALID(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    tampered = bytearray(sign_as(service, "alpha", beta.data))  # RSA: the value ends the DER
    tampered[-1] ^= 0x01
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(
            iter(whole(tender.tender_id, beta.data, bytes(tampered)))
        ),
        "SIGNATURE_INVALID",
        "INVALID_ARGUMENT",
    )


@pytest.mark.parametrize(
    "garbage",
    [b"\x01", b"not a signature", bytes.fromhex("3006020101020102")],
    ids=["one-byte", "text", "der-not-cms"],
)
def test_a_garbage_signature_is_SIGNATURE_MALFORMED(
    service: Service, tender: pb.Tender, beta: Envelope, garbage: bytes
) -> None:
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, garbage))),
        "SIGNATURE_MALFORMED",
        "INVALID_ARGUMENT",
    )


def test_an_empty_signature_is_SIGNATURE_MALFORMED(
    service: Service, tender: pb.Tender, beta: Envelope
) -> None:
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, b""))),
        "SIGNATURE_MALFORMED",
        "INVALID_ARGUMENT",
    )


@pytest.mark.parametrize("offset", [timedelta(minutes=-16), timedelta(minutes=16)])
def test_a_signing_time_far_from_the_service_clock_is_SIGNING_TIME_INVALID(
    service: Service, tender: pb.Tender, beta: Envelope, offset: timedelta
) -> None:
    skew = timedelta(seconds=service.settings.limits.signing_time_skew_seconds)
    assert skew < abs(offset)
    signature = sign_as(service, "beta", beta.data, service.clock.now() + offset)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, signature))),
        "SIGNING_TIME_INVALID",
        "INVALID_ARGUMENT",
    )


# ADR 0006 notes that certvalidator checks revocation before validity, so an expired or
# not-yet-valid certificate whose CRL is missing or stale would come back as
# REVOCATION_UNAVAILABLE. The dev PKI's issuing-CA CRL is current at the service time
# (issued an hour before, next update in 7 days), so here each bad signer gets its own
# verdict: revoked -> SIGNER_REVOKED, expired -> SIGNER_EXPIRED, and so on.
@pytest.mark.parametrize(
    ("signer", "code"),
    [
        ("revoked", "SIGNER_REVOKED"),
        ("expired", "SIGNER_EXPIRED"),
        ("not_yet_valid", "SIGNER_NOT_YET_VALID"),
        ("wrong_key_usage", "SIGNER_KEY_USAGE"),
        ("untrusted", "SIGNER_UNTRUSTED"),
    ],
)
def test_a_bad_signer_is_refused_with_its_own_code(
    service: Service, tender: pb.Tender, beta: Envelope, signer: str, code: str
) -> None:
    signature = sign_as(service, signer, beta.data)
    error = assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, signature))),
        code,
        "PERMISSION_DENIED",
    )
    assert service.pki.bidders[signer].company not in error.message  # who bid stays secret


# --- The server stayed up and the accepted bid is intact ------------------------------
def test_after_every_refusal_a_normal_bid_is_accepted_and_both_open_intact(
    service: Service, tender: pb.Tender, alpha_accepted: pb.Receipt, beta: Envelope
) -> None:
    result = service.bidder.submit_stream(iter(whole(tender.tender_id, beta.data, beta.signature)))
    assert not result.duplicate
    assert result.receipt.content.envelope_sha256 == hashlib.sha256(beta.data).hexdigest()
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))
    try:
        record = json.loads(service.operator.open_tender(tender.tender_id).record_json)
    finally:
        service.clock.set(start)
    assert record["not_opened"] == []
    opened = {b["bid_id"]: b for b in record["bids"]}
    assert set(opened) == {alpha_accepted.content.bid_id, result.receipt.content.bid_id}
    assert all(b["status"] == "OPENED" for b in opened.values())
    alpha = opened[alpha_accepted.content.bid_id]
    assert alpha["form"]["price"] == "777.00"
    assert alpha["envelope_sha256"] == alpha_accepted.content.envelope_sha256
    # Two current bids, two key uses each: the sealed signer identity, the envelope.
    assert service.app.context.token.private_key_uses[tender.tender_id] == 4
