"""One table from our errors to gRPC statuses, carried as google.rpc.Status + ErrorInfo.

Both ``sealed_bid.errors.SealedBidError`` and ``ca_bridge.errors.CaBridgeError`` carry a
stable ``code`` and a status name; this module is the only place that turns them into a
gRPC status, and the client library the only place that turns them back.
"""

from __future__ import annotations

from typing import NoReturn, Protocol

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "sealed-bid"


class CodedError(Protocol):
    code: str
    message: str


def status_name(error: BaseException) -> str:
    """The gRPC status name of one of our errors (SealedBidError or CaBridgeError)."""
    status = getattr(error, "status", None)
    if status is not None:
        return str(getattr(status, "value", status))
    return str(getattr(error, "grpc_status", "INTERNAL"))


def to_rpc_status(code: str, message: str, status: str) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=code, domain=ERROR_DOMAIN)
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(
        code=getattr(code_pb2, status), message=f"{code}: {message}", details=[detail]
    )


def abort_with(context: grpc.ServicerContext, code: str, message: str, status: str) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(to_rpc_status(code, message, status)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def error_code_of(error: grpc.RpcError) -> str | None:
    """The stable code in a received error's ErrorInfo, or None."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                return str(info.reason)
    return None
