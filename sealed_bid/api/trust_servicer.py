"""``TrustService``: a CA authority publishes its own CA's CRLs and intermediates.

Translates only. Who the caller is and which CA it speaks for is ``authority_auth``; every
rule about the material (signed by the CA, newer than the one held, never an anchor) is
``ca_bridge.db_trust_store.DbTrustStore``, which writes the audit entry in the change's
transaction. After a change the trust snapshot is re-read, so the next submission sees it.
"""

from __future__ import annotations

import logging

import grpc

from ca_bridge.db_trust_store import Applied, CertificateRecord, CrlRecord, DbTrustStore
from ca_bridge.store_models import Source
from ca_bridge.trust_snapshots import TrustSnapshots
from sealed_bid.api.authority_auth import Authority, authority_from_context
from sealed_bid.api.convert import timestamp
from sealed_bid.api.servicers import guard
from sealed_bid.errors import MalformedRequest
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc

log = logging.getLogger("sealed_bid.api")


class TrustService(rpc.TrustServiceServicer):
    def __init__(self, store: DbTrustStore, snapshots: TrustSnapshots) -> None:
        self._store = store
        self._snapshots = snapshots

    def PublishCrl(
        self, request: pb.PublishCrlRequest, context: grpc.ServicerContext
    ) -> pb.TrustChangeResponse:
        def call() -> pb.TrustChangeResponse:
            authority = self._authority(context, request.ca_id, request.crl, "crl")
            applied = self._store.add_crl(
                request.ca_id, request.crl, authority.actor, Source.AUTHORITY_PUSH
            )
            self._applied("crl", authority, applied)
            return _crl_response(applied)

        return guard(context, "PublishCrl", call)

    def PublishIntermediate(
        self, request: pb.PublishIntermediateRequest, context: grpc.ServicerContext
    ) -> pb.TrustChangeResponse:
        def call() -> pb.TrustChangeResponse:
            authority = self._authority(context, request.ca_id, request.certificate, "certificate")
            applied = self._store.add_intermediate(
                request.ca_id, request.certificate, authority.actor, Source.AUTHORITY_PUSH
            )
            self._applied("intermediate", authority, applied)
            return _certificate_response(applied)

        return guard(context, "PublishIntermediate", call)

    def _authority(
        self, context: grpc.ServicerContext, ca_id: str, payload: bytes, field: str
    ) -> Authority:
        authority = authority_from_context(context, self._snapshots.current())
        authority.require(ca_id)
        if not payload:
            raise MalformedRequest(f"the request has no {field} (DER)")
        return authority

    def _applied(
        self,
        kind: str,
        authority: Authority,
        applied: Applied[CrlRecord] | Applied[CertificateRecord],
    ) -> None:
        if applied.changed:
            self._snapshots.refresh()
        log.info(
            "trust.published kind=%s ca=%s sha256=%s changed=%s authority=%s",
            kind,
            authority.ca_id,
            applied.record.sha256,
            applied.changed,
            authority.certificate_sha256,
        )


def _crl_response(applied: Applied[CrlRecord]) -> pb.TrustChangeResponse:
    record = applied.record
    return pb.TrustChangeResponse(
        changed=applied.changed,
        sha256=record.sha256,
        ca_id=record.ca_id,
        subject=record.issuer,
        added_at=timestamp(record.fetched_at),
        crl_number="" if record.crl_number is None else str(record.crl_number),
    )


def _certificate_response(applied: Applied[CertificateRecord]) -> pb.TrustChangeResponse:
    record = applied.record
    return pb.TrustChangeResponse(
        changed=applied.changed,
        sha256=record.sha256,
        ca_id=record.ca_id,
        subject=record.subject,
        added_at=timestamp(record.added_at),
    )
