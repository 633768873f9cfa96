"""gRPC servicers. Each method translates a request into one service call and any of our
errors into its gRPC status (``api.status``); unexpected exceptions become INTERNAL with
no detail, and are logged with the bid or tender id only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from ca_bridge.errors import CaBridgeError
from sealed_bid.api import convert
from sealed_bid.api.operator_auth import client_certificate_der, operator_subject
from sealed_bid.api.status import abort_with, status_name
from sealed_bid.errors import MalformedRequest, SealedBidError, StreamIncomplete
from sealed_bid.service.ceremony import CeremonyService
from sealed_bid.service.key_destruction import KeyDestructionService
from sealed_bid.service.key_release import KeyReleaseService
from sealed_bid.service.opening import OpeningService
from sealed_bid.service.responses import BidderOpeningService
from sealed_bid.service.submission import SubmissionService
from sealed_bid.service.tenders import CreateTenderInput, TenderService
from sealed_bid.service.withdrawal import WithdrawalService
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc

log = logging.getLogger("sealed_bid.api")
MAX_SHARE_BYTES = 4096
T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    tenders: TenderService
    submissions: SubmissionService
    withdrawals: WithdrawalService
    opening: OpeningService
    ceremony: CeremonyService
    responses: BidderOpeningService
    keys: KeyDestructionService
    key_release: KeyReleaseService


def guard(context: grpc.ServicerContext, rpc_name: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (SealedBidError, CaBridgeError) as exc:
        log.info("rpc.refused rpc=%s code=%s", rpc_name, exc.code)
        abort_with(context, exc.code, str(getattr(exc, "message", exc)), status_name(exc))
    except grpc.RpcError:
        # Raised only by a request stream whose call ended under us (the client cancelled,
        # the connection broke, grpc refused an oversized message). The upload was aborted;
        # nobody is left to answer, and it is not a server failure.
        log.info("rpc.abandoned rpc=%s", rpc_name)
        abort_with(context, "STREAM_INCOMPLETE", "the request stream ended early", "CANCELLED")
    except Exception:
        log.exception("rpc.failed rpc=%s", rpc_name)
        abort_with(context, "INTERNAL_ERROR", "internal error; nothing was changed", "INTERNAL")


class TenderDirectory(rpc.TenderDirectoryServicer):
    def __init__(self, services: Services) -> None:
        self._s = services

    def GetTender(self, request: pb.GetTenderRequest, context: grpc.ServicerContext) -> pb.Tender:
        return guard(
            context,
            "GetTender",
            lambda: convert.tender_message(self._s.tenders.get(request.tender_id)),
        )

    def ListTenders(
        self, request: pb.ListTendersRequest, context: grpc.ServicerContext
    ) -> pb.ListTendersResponse:
        return guard(
            context,
            "ListTenders",
            lambda: pb.ListTendersResponse(
                tenders=[convert.tender_message(t) for t in self._s.tenders.list()]
            ),
        )


class BidSubmission(rpc.BidSubmissionServicer):
    def __init__(self, services: Services) -> None:
        self._s = services

    def SubmitBid(
        self, request_iterator: Iterator[pb.SubmitBidRequest], context: grpc.ServicerContext
    ) -> pb.SubmitBidResponse:
        return guard(context, "SubmitBid", lambda: self._submit(request_iterator))

    def _submit(self, requests: Iterator[pb.SubmitBidRequest]) -> pb.SubmitBidResponse:
        first = next(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise MalformedRequest("a submission starts with exactly one header")
        upload = self._s.submissions.begin(first.header.tender_id, first.header.envelope_size)
        try:
            for message in requests:
                part = message.WhichOneof("part")
                if part == "chunk":
                    upload.write(message.chunk)
                elif part == "trailer":
                    if next(requests, None) is not None:
                        raise MalformedRequest("nothing may follow the trailer")
                    result = upload.finish(
                        message.trailer.envelope_sha256, message.trailer.outer_signature
                    )
                    return pb.SubmitBidResponse(
                        receipt=convert.receipt_message(result), duplicate=result.duplicate
                    )
                else:
                    raise MalformedRequest(f"unexpected {part or 'empty'} message in the stream")
            raise StreamIncomplete("the stream ended before its trailer; nothing was stored")
        finally:
            upload.abort()  # no-op after a successful finish

    def WithdrawBid(
        self, request: pb.WithdrawBidRequest, context: grpc.ServicerContext
    ) -> pb.WithdrawBidResponse:
        return guard(
            context,
            "WithdrawBid",
            lambda: pb.WithdrawBidResponse(
                receipt=convert.receipt_message(
                    self._s.withdrawals.withdraw(request.signed_statement)
                )
            ),
        )

    def GetReceipt(
        self, request: pb.GetReceiptRequest, context: grpc.ServicerContext
    ) -> pb.Receipt:
        return guard(
            context,
            "GetReceipt",
            lambda: convert.receipt_message(
                self._s.submissions.receipt(request.tender_id, request.bid_id)
            ),
        )


class TenderAdmin(rpc.TenderAdminServicer):
    def __init__(self, services: Services) -> None:
        self._s = services

    def CreateTender(
        self, request: pb.CreateTenderRequest, context: grpc.ServicerContext
    ) -> pb.Tender:
        def call() -> pb.Tender:
            operator = operator_subject(context)
            if not (request.HasField("deadline") and request.HasField("opening_time")):
                raise MalformedRequest("deadline and opening_time are required")
            view = self._s.tenders.create(
                CreateTenderInput(
                    tender_id=request.tender_id,
                    title=request.title,
                    deadline=convert.from_timestamp(request.deadline),
                    opening_time=convert.from_timestamp(request.opening_time),
                    max_envelope_bytes=request.max_envelope_bytes,
                    accepted_ca_ids=tuple(request.accepted_ca_ids),
                    bid_count_visible=request.bid_count_visible,
                    revocation_policy=request.revocation_policy,
                    certificate_policies=tuple(request.certificate_policies),
                    extended_key_usages=tuple(request.extended_key_usages),
                    quorum_threshold=request.quorum_threshold,
                    officer_certificates=tuple(request.officer_certificates),
                    response_window_seconds=request.response_window_seconds,
                ),
                operator=operator,
            )
            return convert.tender_message(view)

        return guard(context, "CreateTender", call)

    def RescheduleTender(
        self, request: pb.RescheduleTenderRequest, context: grpc.ServicerContext
    ) -> pb.Tender:
        def call() -> pb.Tender:
            operator = operator_subject(context)
            if not (request.HasField("deadline") and request.HasField("opening_time")):
                raise MalformedRequest("deadline and opening_time are required")
            view = self._s.tenders.reschedule(
                request.tender_id,
                convert.from_timestamp(request.deadline),
                convert.from_timestamp(request.opening_time),
                request.reason,
                operator,
            )
            return convert.tender_message(view)

        return guard(context, "RescheduleTender", call)

    def GetBidCount(
        self, request: pb.GetBidCountRequest, context: grpc.ServicerContext
    ) -> pb.GetBidCountResponse:
        def call() -> pb.GetBidCountResponse:
            operator_subject(context)
            return pb.GetBidCountResponse(current_bids=self._s.tenders.bid_count(request.tender_id))

        return guard(context, "GetBidCount", call)


class Opening(rpc.OpeningServicer):
    def __init__(self, services: Services) -> None:
        self._s = services

    def OpenTender(
        self, request: pb.OpenTenderRequest, context: grpc.ServicerContext
    ) -> pb.OpeningRecord:
        def call() -> pb.OpeningRecord:
            operator = operator_subject(context)
            view = self._s.opening.open(request.tender_id, operator)
            return convert.record_message(view, self._s.responses.record_extras(view.tender_id))

        return guard(context, "OpenTender", call)

    def DestroyTenderKey(
        self, request: pb.DestroyTenderKeyRequest, context: grpc.ServicerContext
    ) -> pb.OpeningRecord:
        def call() -> pb.OpeningRecord:
            operator = operator_subject(context)
            view = self._s.keys.destroy(request.tender_id, operator)
            return convert.record_message(view, self._s.responses.record_extras(view.tender_id))

        return guard(context, "DestroyTenderKey", call)

    def GetOfficerShare(
        self, request: pb.GetOfficerShareRequest, context: grpc.ServicerContext
    ) -> pb.OfficerShare:
        def call() -> pb.OfficerShare:
            view = self._s.ceremony.officer_share(
                request.tender_id, client_certificate_der(context)
            )
            return pb.OfficerShare(
                tender_id=view.tender_id,
                index=view.index,
                threshold=view.threshold,
                total=view.total,
                sealed_share=view.sealed_share,
            )

        return guard(context, "GetOfficerShare", call)

    def PresentShare(
        self, request: pb.PresentShareRequest, context: grpc.ServicerContext
    ) -> pb.PresentShareResponse:
        def call() -> pb.PresentShareResponse:
            if len(request.share) > MAX_SHARE_BYTES:
                raise MalformedRequest(f"a share is at most {MAX_SHARE_BYTES} bytes")
            count = self._s.ceremony.present_share(
                request.tender_id, client_certificate_der(context), request.share
            )
            return pb.PresentShareResponse(presented=count.presented, threshold=count.threshold)

        return guard(context, "PresentShare", call)


class Records(rpc.RecordsServicer):
    def __init__(self, services: Services) -> None:
        self._s = services

    def GetOpeningRecord(
        self, request: pb.GetOpeningRecordRequest, context: grpc.ServicerContext
    ) -> pb.OpeningRecord:
        def call() -> pb.OpeningRecord:
            view = self._s.opening.record(request.tender_id)
            return convert.record_message(view, self._s.responses.record_extras(view.tender_id))

        return guard(context, "GetOpeningRecord", call)
