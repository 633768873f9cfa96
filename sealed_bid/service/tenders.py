"""Creating and describing tenders. Creation generates the tender's key pair on the token
and has the platform's tender-key CA (also on the token) certify it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from sealed_bid.crypto.certs import CertProfile, issue_certificate
from sealed_bid.domain.custody import (
    DEFAULT_RESPONSE_WINDOW_SECONDS,
    MAX_RESPONSE_WINDOW_SECONDS,
    UnlockPolicy,
    check_officers_authenticate,
    validate_unlock_policy,
)
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.tender import BidAlgorithms, validate_reschedule, validate_tender_spec
from sealed_bid.errors import (
    AlreadyOpened,
    CountHidden,
    InvalidTender,
    TenderExists,
    TenderNotFound,
)
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.custody import (
    ProvisionedQuorum,
    load_response_window,
    load_unlock_policy,
    provision_quorum,
)
from sealed_bid.service.views import TenderView
from sealed_bid.storage.custody_models import TenderCustody
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
    quorum_threshold: int = 0
    officer_certificates: tuple[bytes, ...] = ()
    response_window_seconds: int = 0


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
        response_window = request.response_window_seconds or DEFAULT_RESPONSE_WINDOW_SECONDS
        if not 0 < response_window <= MAX_RESPONSE_WINDOW_SECONDS:
            raise InvalidTender(
                f"response_window_seconds must be 1..{MAX_RESPONSE_WINDOW_SECONDS}",
                field="response_window_seconds",
            )
        unlock = validate_unlock_policy(request.quorum_threshold, request.officer_certificates, now)
        with unit_of_work(ctx.engine, read_only=True) as session:
            try:
                Repository(session).get_tender(spec.tender_id)
            except TenderNotFound:
                pass
            else:
                raise TenderExists(f"tender {spec.tender_id} exists already")
        quorum: ProvisionedQuorum | None = None
        if unlock.kind == "quorum":
            if ctx.quorum_tokens is None:
                raise InvalidTender("this service is not set up for quorum tenders")
            if ctx.quorum_tokens.exists(spec.tender_id):
                raise TenderExists(f"a token for tender {spec.tender_id} exists already")
            check_officers_authenticate(unlock, ctx.settings.operator_ca_path.read_bytes(), now)
            quorum = provision_quorum(ctx.quorum_tokens, spec.tender_id, unlock)
            public_key = quorum.public_key
        else:
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
            session.add(
                TenderCustody(
                    tender_id=spec.tender_id,
                    policy=unlock.kind,
                    threshold=unlock.threshold,
                    token_label=None if quorum is None else quorum.token_label,
                    response_window_seconds=response_window,
                    key_destroyed_at=None,
                )
            )
            if quorum is not None:
                session.add_all(quorum.officers)
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
                    "unlock_policy": unlock.kind,
                    "threshold": unlock.threshold,
                    "officers": ",".join(o.certificate_sha256 for o in unlock.officers),
                },
            )
            view = self._view(tender, unlock, response_window)
        log.info("tender.created tender=%s", spec.tender_id)
        return view

    def reschedule(
        self,
        tender_id: str,
        deadline: datetime,
        opening_time: datetime,
        reason: str,
        operator: str,
    ) -> TenderView:
        """Move the schedule; recorded in the audit log in the same transaction."""
        ctx = self._ctx
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            tender = repo.lock_tender(TenderId(tender_id))
            if tender.state == TenderState.OPENED:
                raise AlreadyOpened(f"tender {tender_id} is opened; its schedule is final")
            now = ctx.clock.now()
            cert = x509.load_der_x509_certificate(tender.tender_cert_der)
            change = validate_reschedule(
                current_deadline=tender.deadline,
                deadline=deadline,
                opening_time=opening_time,
                reason=reason,
                now=now,
                key_valid_until=cert.not_valid_after_utc,
                limits=ctx.settings.limits,
            )
            old_deadline, old_opening = tender.deadline, tender.opening_time
            tender.deadline = change.deadline
            tender.opening_time = change.opening_time
            ctx.audit.append(
                session,
                at=now,
                event="tender.rescheduled",
                tender_id=tender.id,
                bid_id=None,
                fields={
                    "operator": operator,
                    "reason": change.reason,
                    "old_deadline": old_deadline.isoformat(),
                    "old_opening_time": old_opening.isoformat(),
                    "deadline": change.deadline.isoformat(),
                    "opening_time": change.opening_time.isoformat(),
                },
            )
            view = self._view(
                tender,
                load_unlock_policy(session, tender.id),
                load_response_window(session, tender.id),
            )
        log.info("tender.rescheduled tender=%s", tender_id)
        return view

    def get(self, tender_id: str) -> TenderView:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            tender = Repository(session).get_tender(TenderId(tender_id))
            return self._view(
                tender,
                load_unlock_policy(session, tender.id),
                load_response_window(session, tender.id),
            )

    def list(self) -> list[TenderView]:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            return [
                self._view(
                    t, load_unlock_policy(session, t.id), load_response_window(session, t.id)
                )
                for t in Repository(session).list_tenders()
            ]

    def bid_count(self, tender_id: str) -> int:
        """Operators see a count before the opening only if the tender's policy allows."""
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            repo = Repository(session)
            tender = repo.get_tender(TenderId(tender_id))
            if tender.state != TenderState.OPENED and not tender.count_visible:
                raise CountHidden("this tender's policy hides the bid count until the opening")
            return repo.count_current_bids(tender.id)

    def _view(
        self, tender: Tender, unlock: UnlockPolicy, window: int = DEFAULT_RESPONSE_WINDOW_SECONDS
    ) -> TenderView:
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
            unlock_policy=unlock,
            response_window_seconds=window,
        )
