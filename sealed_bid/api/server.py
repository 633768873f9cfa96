"""The two TLS listeners: public (bidders, the public) and operator (mutual TLS)."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from sealed_bid.api import servicers as sv
from sealed_bid.config import Limits
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc


@dataclass(frozen=True)
class TlsMaterial:
    server_key_pem: bytes
    server_chain_pem: bytes
    operator_client_ca_pem: bytes
    """Roots that operator client certificates must chain to."""

    @classmethod
    def from_files(cls, key: Path, chain: Path, client_ca: Path) -> TlsMaterial:
        return cls(key.read_bytes(), chain.read_bytes(), client_ca.read_bytes())


class SealedBidServer:
    """Owns both grpc servers; ``start()`` binds and returns the bound ports."""

    def __init__(
        self,
        services: sv.Services,
        tls: TlsMaterial,
        limits: Limits,
        public_address: str,
        operator_address: str,
        workers: int = 16,
    ) -> None:
        # A data message is one chunk plus a few bytes of framing; trailers carry a
        # signature of at most max_signature_bytes.
        max_message = max(limits.max_chunk_bytes, limits.max_signature_bytes) + 4096
        options = [
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
        self._public = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
        self._operator = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        rpc.add_TenderDirectoryServicer_to_server(sv.TenderDirectory(services), self._public)
        rpc.add_BidSubmissionServicer_to_server(sv.BidSubmission(services), self._public)
        rpc.add_RecordsServicer_to_server(sv.Records(services), self._public)
        rpc.add_TenderAdminServicer_to_server(sv.TenderAdmin(services), self._operator)
        rpc.add_OpeningServicer_to_server(sv.Opening(services), self._operator)
        rpc.add_TenderDirectoryServicer_to_server(sv.TenderDirectory(services), self._operator)
        rpc.add_RecordsServicer_to_server(sv.Records(services), self._operator)
        pair = [(tls.server_key_pem, tls.server_chain_pem)]
        self._public_port = self._public.add_secure_port(
            public_address, grpc.ssl_server_credentials(pair)
        )
        self._operator_port = self._operator.add_secure_port(
            operator_address,
            grpc.ssl_server_credentials(
                pair, root_certificates=tls.operator_client_ca_pem, require_client_auth=True
            ),
        )
        if not self._public_port or not self._operator_port:
            raise OSError(f"cannot bind {public_address} or {operator_address}")

    @property
    def public_port(self) -> int:
        return self._public_port

    @property
    def operator_port(self) -> int:
        return self._operator_port

    def start(self) -> None:
        self._public.start()
        self._operator.start()

    def stop(self, grace: float | None = 2.0) -> None:
        a = self._public.stop(grace)
        b = self._operator.stop(grace)
        a.wait()
        b.wait()

    def wait(self) -> None:
        self._public.wait_for_termination()
