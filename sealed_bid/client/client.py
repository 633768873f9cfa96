"""A thin, typed client over the gRPC contract. Refusals raise ``ServiceError`` carrying the
service's stable code (``exc.code == "BID_LATE"``) and gRPC status."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc

from sealed_bid.api.convert import timestamp
from sealed_bid.api.status import error_code_of
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc

DEFAULT_CHUNK = 1024 * 1024
T = TypeVar("T")


class ServiceError(Exception):
    """The service refused a request; ``code`` is stable, ``status`` the gRPC status name."""

    def __init__(self, code: str, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> ServiceError:
        status = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        code = error_code_of(error) or f"GRPC_{status.name}"
        return cls(code, status.name, details or "")


def _call(rpc_call: Callable[[], T]) -> T:
    try:
        return rpc_call()
    except grpc.RpcError as exc:
        raise ServiceError.from_rpc(exc) from None


@dataclass(frozen=True)
class SubmitResult:
    receipt: pb.Receipt
    duplicate: bool


class SealedBidClient:
    def __init__(
        self,
        address: str,
        root_ca_pem: bytes,
        client_key_pem: bytes | None = None,
        client_chain_pem: bytes | None = None,
    ) -> None:
        creds = grpc.ssl_channel_credentials(root_ca_pem, client_key_pem, client_chain_pem)
        self._channel = grpc.secure_channel(
            address, creds, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self._directory = rpc.TenderDirectoryStub(self._channel)
        self._bids = rpc.BidSubmissionStub(self._channel)
        self._admin = rpc.TenderAdminStub(self._channel)
        self._opening = rpc.OpeningStub(self._channel)
        self._records = rpc.RecordsStub(self._channel)
        self._watch = rpc.OpeningWatchStub(self._channel)
        self._bidder_opening = rpc.BidderOpeningStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SealedBidClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- public -------------------------------------------------------------------------
    def get_tender(self, tender_id: str) -> pb.Tender:
        return _call(lambda: self._directory.GetTender(pb.GetTenderRequest(tender_id=tender_id)))

    def list_tenders(self) -> list[pb.Tender]:
        return _call(lambda: list(self._directory.ListTenders(pb.ListTendersRequest()).tenders))

    def submit_bid(
        self,
        tender_id: str,
        envelope: Path,
        outer_signature: bytes,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> SubmitResult:
        """Stream ``envelope`` from disk; never holds it in memory."""
        size = envelope.stat().st_size
        digest = hashlib.sha256()
        with envelope.open("rb") as f:
            while block := f.read(chunk_size):
                digest.update(block)
        return self.submit_stream(
            submission_stream(
                tender_id, envelope, size, digest.digest(), outer_signature, chunk_size
            )
        )

    def submit_stream(self, requests: Iterator[pb.SubmitBidRequest]) -> SubmitResult:
        """Send a hand-made request stream (tests and tools that probe the server)."""
        response = _call(lambda: self._bids.SubmitBid(requests))
        return SubmitResult(response.receipt, response.duplicate)

    def withdraw_bid(self, signed_statement: bytes) -> pb.Receipt:
        request = pb.WithdrawBidRequest(signed_statement=signed_statement)
        return _call(lambda: self._bids.WithdrawBid(request).receipt)

    def get_receipt(self, tender_id: str, bid_id: str) -> pb.Receipt:
        return _call(
            lambda: self._bids.GetReceipt(pb.GetReceiptRequest(tender_id=tender_id, bid_id=bid_id))
        )

    def get_record(self, tender_id: str) -> pb.OpeningRecord:
        request = pb.GetOpeningRecordRequest(tender_id=tender_id)
        return _call(lambda: self._records.GetOpeningRecord(request))

    # --- bidders at the opening (public port, signed requests) --------------------------
    def watch_as_bidder(self, signed_request: bytes) -> OpeningStream:
        """The live events of the opening of a tender one bid in: ``signed_request`` is
        the attached CMS signature, by the bidding certificate, over a ``WatchRequest``.
        A refusal (e.g. NOT_A_BIDDER) is raised by the first ``next()``."""
        request = pb.WatchAsBidderRequest(signed_request=signed_request)
        return OpeningStream(self._bidder_opening.WatchAsBidder(request))

    def respond_to_record(self, signed_statement: bytes) -> pb.OpeningResponse:
        """Confirm or object to an opening record (a signed ``ResponseStatement``)."""
        request = pb.RespondToRecordRequest(signed_statement=signed_statement)
        return _call(lambda: self._bidder_opening.RespondToRecord(request))

    def release_content_key(self, signed_release: bytes) -> pb.ReleaseContentKeyResponse:
        """Release the content key of one's own bid for its opening (a signed
        ``KeyRelease``), between the opening time and the opening."""
        request = pb.ReleaseContentKeyRequest(signed_release=signed_release)
        return _call(lambda: self._bidder_opening.ReleaseContentKey(request))

    # --- operators (operator port, mutual TLS) ------------------------------------------
    def create_tender(
        self,
        tender_id: str,
        title: str,
        deadline: datetime,
        opening_time: datetime,
        accepted_ca_ids: list[str],
        max_envelope_bytes: int = 0,
        bid_count_visible: bool = False,
        revocation_policy: str = "",
        certificate_policies: tuple[str, ...] = (),
        extended_key_usages: tuple[str, ...] = (),
        quorum_threshold: int = 0,
        officer_certificates: tuple[bytes, ...] = (),
        response_window_seconds: int = 0,
    ) -> pb.Tender:
        request = pb.CreateTenderRequest(
            tender_id=tender_id,
            title=title,
            deadline=timestamp(deadline),
            opening_time=timestamp(opening_time),
            max_envelope_bytes=max_envelope_bytes,
            accepted_ca_ids=accepted_ca_ids,
            bid_count_visible=bid_count_visible,
            revocation_policy=revocation_policy,
            certificate_policies=list(certificate_policies),
            extended_key_usages=list(extended_key_usages),
            quorum_threshold=quorum_threshold,
            officer_certificates=list(officer_certificates),
            response_window_seconds=response_window_seconds,
        )
        return _call(lambda: self._admin.CreateTender(request))

    def reschedule_tender(
        self, tender_id: str, deadline: datetime, opening_time: datetime, reason: str
    ) -> pb.Tender:
        request = pb.RescheduleTenderRequest(
            tender_id=tender_id,
            deadline=timestamp(deadline),
            opening_time=timestamp(opening_time),
            reason=reason,
        )
        return _call(lambda: self._admin.RescheduleTender(request))

    def bid_count(self, tender_id: str) -> int:
        request = pb.GetBidCountRequest(tender_id=tender_id)
        return _call(lambda: int(self._admin.GetBidCount(request).current_bids))

    def open_tender(self, tender_id: str) -> pb.OpeningRecord:
        return _call(lambda: self._opening.OpenTender(pb.OpenTenderRequest(tender_id=tender_id)))

    def destroy_tender_key(self, tender_id: str) -> pb.OpeningRecord:
        """Destroy the tender key once the response window has closed; idempotent."""
        request = pb.DestroyTenderKeyRequest(tender_id=tender_id)
        return _call(lambda: self._opening.DestroyTenderKey(request))

    def watch_opening(self, tender_id: str) -> OpeningStream:
        """The live events of one tender's opening (operator or observer certificate):
        a snapshot first, then each step. The stream runs until ``cancel()``."""
        request = pb.WatchOpeningRequest(tender_id=tender_id)
        return OpeningStream(self._watch.WatchOpening(request))

    # --- opening officers (operator port, the officer's own client certificate) ---------
    def get_officer_share(self, tender_id: str) -> pb.OfficerShare:
        request = pb.GetOfficerShareRequest(tender_id=tender_id)
        return _call(lambda: self._opening.GetOfficerShare(request))

    def present_share(self, tender_id: str, share: bytes) -> pb.PresentShareResponse:
        request = pb.PresentShareRequest(tender_id=tender_id, share=share)
        return _call(lambda: self._opening.PresentShare(request))


class OpeningStream(Iterator[pb.OpeningEvent]):
    """A ``WatchOpening`` (or ``WatchAsBidder``) stream. Iterating raises ``ServiceError``
    on a refusal or a broken stream and stops after ``cancel()``, which any thread may
    call (it wakes a reader blocked waiting for the next event)."""

    def __init__(self, call: grpc.CallIterator[pb.OpeningEvent]) -> None:
        self._call = call
        self._events = iter(call)
        self._cancelled = False

    def __next__(self) -> pb.OpeningEvent:
        try:
            return next(self._events)
        except grpc.RpcError as exc:
            if self._cancelled:
                raise StopIteration from None
            raise ServiceError.from_rpc(exc) from None

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def __enter__(self) -> OpeningStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


def submission_stream(
    tender_id: str,
    envelope: Path,
    size: int,
    sha256: bytes,
    outer_signature: bytes,
    chunk_size: int = DEFAULT_CHUNK,
) -> Iterator[pb.SubmitBidRequest]:
    yield pb.SubmitBidRequest(header=pb.SubmissionHeader(tender_id=tender_id, envelope_size=size))
    with envelope.open("rb") as f:
        while block := f.read(chunk_size):
            yield pb.SubmitBidRequest(chunk=block)
    yield pb.SubmitBidRequest(
        trailer=pb.SubmissionTrailer(envelope_sha256=sha256, outer_signature=outer_signature)
    )
