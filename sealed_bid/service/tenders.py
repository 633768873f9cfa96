"""Creating and describing tenders. Creation generates the tender's key pair on the token
and has the platform's tender-key CA (also on the token) certify it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from sealed_bid.crypto.certs import CertProfile, issue_certificate
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.tender import BidAlgorithms, validate_tender_spec
from sealed_bid.errors import CountHidden, TenderExists, TenderNotFound
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.views import TenderView
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import Tender, TenderState
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.tenders")

TENDER_CERT_VALIDITY_AFTER_OPENING = timedelta(days=365)


@dataclass(frozen=True)
class CreateTenderInput:
    tender_id: str
    title: str
    deadline: datetime
    opening_time: datetime
    max_envelope_bytes: int
    accepted_ca_ids: tuple[str, ...]
    bid_count_visible: bool
    revocation_policy: str = ""
    certificate_policies: tuple[str, ...] = ()
    extended_key_usages: tuple[str, ...] = ()


class TenderService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def create(self, request: CreateTenderInput, operator: str) -> TenderView:
        ctx = self._ctx
        now = ctx.clock.now()
        spec = validate_tender_spec(
            tender_id=request.tender_id,
            title=request.title,
            deadline=request.deadline,
            opening_time=request.opening_time,
            max_envelope_bytes=request.max_envelope_bytes,
            accepted_ca_ids=request.accepted_ca_ids,
            bid_count_visible=request.bid_count_visible,
            revocation_policy=request.revocation_policy,
            certificate_policies=request.certificate_policies,
            extended_key_usages=request.extended_key_usages,
            known_ca_ids=frozenset(ctx.trust.current().ca_ids()),
            now=now,
            limits=ctx.settings.limits,
        )
        with unit_of_work(ctx.engine, read_only=True) as session:
            try:
                Repository(session).get_tender(spec.tender_id)
            except TenderNotFound:
                pass
            else:
                raise TenderExists(f"tender {spec.tender_id} exists already")
        if ctx.token.tender_key_exists(spec.tender_id):
            raise TenderExists(f"a key for tender {spec.tender_id} exists on the token already")
        public_key = ctx.token.generate_tender_key(spec.tender_id)
        cert_der = issue_certificate(
            ctx.tender_ca_signer,
            subject=x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sealed Bid"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"Tender {spec.tender_id}"),
                ]
            ),
            subject_public_key=public_key,
            not_before=now - timedelta(minutes=5),
            not_after=spec.opening_time + TENDER_CERT_VALIDITY_AFTER_OPENING,
            serial=None,
            profile=CertProfile(ca=False, key_usage=frozenset({"key_encipherment"})),
        )
        algorithms = BidAlgorithms(oaep_hashes=ctx.oaep_hashes)
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            tender = Tender(
                id=spec.tender_id,
                title=spec.title,
                created_at=now,
                deadline=spec.deadline,
                opening_time=spec.opening_time,
                max_envelope_bytes=spec.max_envelope_bytes,
                accepted_ca_ids=list(spec.accepted_ca_ids),
                oaep_hashes=list(algorithms.oaep_hashes),
                content_algorithms=list(algorithms.content_encryption),
                tender_cert_der=cert_der,
                count_visible=spec.bid_count_visible,
                revocation_policy=spec.revocation_policy,
                policy_oids=list(spec.certificate_policies),
                eku_oids=list(spec.extended_key_usages),
                state=TenderState.ACCEPTING,
                opened_at=None,
            )
            repo.add_tender(tender)
            ctx.audit.append(
                session,
                at=now,
                event="tender.created",
                tender_id=spec.tender_id,
                bid_id=None,
                fields={
                    "operator": operator,
                    "deadline": spec.deadline.isoformat(),
                    "opening_time": spec.opening_time.isoformat(),
                    "max_envelope_bytes": spec.max_envelope_bytes,
                    "accepted_ca_ids": ",".join(spec.accepted_ca_ids),
                    "count_visible": spec.bid_count_visible,
                    "revocation_policy": spec.revocation_policy,
                    "certificate_policies": ",".join(spec.certificate_policies),
                    "extended_key_usages": ",".join(spec.extended_key_usages),
                },
            )
            view = self._view(tender)
        log.info("tender.created tender=%s", spec.tender_id)
        return view

    def get(self, tender_id: str) -> TenderView:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            return self._view(Repository(session).get_tender(TenderId(tender_id)))

    def list(self) -> list[TenderView]:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            return [self._view(t) for t in Repository(session).list_tenders()]

    def bid_count(self, tender_id: str) -> int:
        """Operators see a count before the opening only if the tender's policy allows."""
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            repo = Repository(session)
            tender = repo.get_tender(TenderId(tender_id))
            if tender.state != TenderState.OPENED and not tender.count_visible:
                raise CountHidden("this tender's policy hides the bid count until the opening")
            return repo.count_current_bids(tender.id)

    def _view(self, tender: Tender) -> TenderView:
        return TenderView(
            tender_id=tender.id,
            title=tender.title,
            created_at=tender.created_at,
            deadline=tender.deadline,
            opening_time=tender.opening_time,
            tender_certificate_der=tender.tender_cert_der,
            tender_ca_certificate_der=self._ctx.tender_ca_signer.certificate_der,
            algorithms=BidAlgorithms(
                oaep_hashes=tuple(tender.oaep_hashes),
                content_encryption=tuple(tender.content_algorithms),
            ),
            max_envelope_bytes=tender.max_envelope_bytes,
            accepted_ca_ids=tuple(tender.accepted_ca_ids),
            state=str(tender.state.value),
            bid_count_visible=tender.count_visible,
            revocation_policy=tender.revocation_policy,
            certificate_policies=tuple(tender.policy_oids or ()),
            extended_key_usages=tuple(tender.eku_oids or ()),
        )
