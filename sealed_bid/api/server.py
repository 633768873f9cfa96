"""The TLS listeners: public (bidders, the public), operator (mutual TLS) and, when
configured, authority (mutual TLS; CA authorities publish CRLs and intermediates).

The authority listener's client roots are the trust store's active anchors, re-read for
every new connection (``grpc.dynamic_ssl_server_credentials``), so a CA approved or
removed by operators is accepted or refused without a restart (ADR 0011)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from sealed_bid.api import servicers as sv
from sealed_bid.api.bidder_servicer import MAX_BIDDER_WATCH_STREAMS, BidderOpening
from sealed_bid.api.watch_servicer import MAX_WATCH_STREAMS, OpeningWatch
from sealed_bid.config import Limits
from sealed_bid.service.context import ServiceContext
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc

log = logging.getLogger("sealed_bid.api")

MAX_TRUST_MESSAGE_BYTES = 32 * 1024 * 1024
"""Largest request on the authority port: a large CA's full CRL runs to megabytes."""


@dataclass(frozen=True)
class TlsMaterial:
    server_key_pem: bytes
    server_chain_pem: bytes
    operator_client_ca_pem: bytes
    """Roots that operator client certificates must chain to."""

    @classmethod
    def from_files(cls, key: Path, chain: Path, client_ca: Path) -> TlsMaterial:
        return cls(key.read_bytes(), chain.read_bytes(), client_ca.read_bytes())


@dataclass(frozen=True)
class AuthorityListener:
    """The authority port: where, what it serves, and its current client roots (PEM)."""

    address: str
    servicer: rpc.TrustServiceServicer
    client_roots: Callable[[], bytes]


class _ClientRoots:
    """grpc's certificate-configuration fetcher: called before every new TLS handshake on
    the authority port; returns a new configuration only when the roots changed. If the
    roots cannot be read, the previous ones stay (the servicer re-checks every call)."""

    def __init__(self, pair: list[tuple[bytes, bytes]], roots: Callable[[], bytes]) -> None:
        self._pair = pair
        self._roots = roots
        self._lock = threading.Lock()
        self._pem = roots()

    def initial(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(self._pair, self._pem)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            pem = self._roots()
        except Exception:  # any failure: raised in grpc's handshake thread it would be lost
            log.warning("authority.roots_unreadable kept=previous", exc_info=True)
            return None
        with self._lock:
            if pem == self._pem:
                return None
            self._pem = pem
        log.info("authority.roots_changed anchors=%d", pem.count(b"-----BEGIN CERTIFICATE-----"))
        return grpc.ssl_server_certificate_configuration(self._pair, pem)


class SealedBidServer:
    """Owns the grpc servers; ``start()`` binds and returns the bound ports."""

    def __init__(
        self,
        services: sv.Services,
        tls: TlsMaterial,
        limits: Limits,
        public_address: str,
        operator_address: str,
        workers: int = 16,
        authority: AuthorityListener | None = None,
        context: ServiceContext | None = None,
    ) -> None:
        """``context`` given: the operator listener also serves ``OpeningWatch`` and the
        public one ``BidderOpening``, each with threads reserved for its long-lived
        streams."""
        # A data message is one chunk plus a few bytes of framing; trailers carry a
        # signature of at most max_signature_bytes.
        max_message = max(limits.max_chunk_bytes, limits.max_signature_bytes) + 4096
        options = [
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
        bidder_threads = MAX_BIDDER_WATCH_STREAMS if context is not None else 0
        self._public = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers + bidder_threads), options=options
        )
        watch_threads = MAX_WATCH_STREAMS if context is not None else 0
        self._operator = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4 + watch_threads), options=options
        )
        rpc.add_TenderDirectoryServicer_to_server(sv.TenderDirectory(services), self._public)
        rpc.add_BidSubmissionServicer_to_server(sv.BidSubmission(services), self._public)
        rpc.add_RecordsServicer_to_server(sv.Records(services), self._public)
        rpc.add_TenderAdminServicer_to_server(sv.TenderAdmin(services), self._operator)
        rpc.add_OpeningServicer_to_server(sv.Opening(services), self._operator)
        rpc.add_TenderDirectoryServicer_to_server(sv.TenderDirectory(services), self._operator)
        rpc.add_RecordsServicer_to_server(sv.Records(services), self._operator)
        if context is not None:
            rpc.add_OpeningWatchServicer_to_server(
                OpeningWatch(context, services.tenders), self._operator
            )
            rpc.add_BidderOpeningServicer_to_server(
                BidderOpening(
                    context,
                    services.tenders,
                    services.responses,
                    key_release=services.key_release,
                ),
                self._public,
            )
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
        self._authority: grpc.Server | None = None
        self._authority_port = 0
        if authority is not None:
            self._authority = grpc.server(
                futures.ThreadPoolExecutor(max_workers=4),
                options=[
                    ("grpc.max_receive_message_length", MAX_TRUST_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", 64 * 1024),
                ],
            )
            rpc.add_TrustServiceServicer_to_server(authority.servicer, self._authority)
            roots = _ClientRoots(pair, authority.client_roots)
            self._authority_port = self._authority.add_secure_port(
                authority.address,
                grpc.dynamic_ssl_server_credentials(
                    roots.initial(),
                    # grpc-stubs omits the documented None ("no change") from the type.
                    roots,  # type: ignore[arg-type]
                    require_client_authentication=True,
                ),
            )
            if not self._authority_port:
                raise OSError(f"cannot bind {authority.address}")

    @property
    def public_port(self) -> int:
        return self._public_port

    @property
    def operator_port(self) -> int:
        return self._operator_port

    @property
    def authority_port(self) -> int:
        """The bound authority port; 0 when there is no authority listener."""
        return self._authority_port

    def _servers(self) -> list[grpc.Server]:
        return [self._public, self._operator] + ([self._authority] if self._authority else [])

    def start(self) -> None:
        for server in self._servers():
            server.start()

    def stop(self, grace: float | None = 2.0) -> None:
        for stopped in [server.stop(grace) for server in self._servers()]:
            stopped.wait()

    def wait(self) -> None:
        self._public.wait_for_termination()
