"""The trust store in the database: the one place trust material is changed.

Owns the rules for changing trust: an intermediate must be signed by an active anchor or
intermediate of the same CA; a CRL must be signed by a certificate of that CA and be
newer than the one held for its issuer; an anchor becomes active only when a second,
different operator approves it. Every change is one transaction that locks the CA's row,
writes the trust-change log and (when given) calls ``on_change`` in the same transaction,
so an audit entry commits or rolls back with the change it describes.

Validation never reads the database: it gets the immutable ``TrustStore`` value from
``snapshot()`` (only active certificates, the newest CRL per issuer).

It must never fetch anything from the network (the sync job does, then calls here) and
never import ``sealed_bid``. Signature checks go through ``_issued_by`` and
``_crl_signed_by`` only, so another algorithm family (SM2) plugs in at those two points.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import ColumnElement, Engine, Select, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ca_bridge.errors import CertificateMalformed
from ca_bridge.store_models import (
    CaStatus,
    CertRole,
    CertStatus,
    Source,
    TrustCa,
    TrustCertificate,
    TrustChange,
    TrustCrl,
)
from ca_bridge.trust_errors import (
    AnchorApprovalSameOperator,
    CaNotFound,
    CrlNotNewer,
    CrlSignatureInvalid,
    IntermediateUnchained,
    TrustCertificateNotFound,
    TrustChangeRefused,
    TrustDatabaseUnavailable,
)
from ca_bridge.trust_store import (
    CA_ID_PATTERN,
    CaMaterial,
    TrustStore,
    parse_certificate,
    parse_crl,
)

FieldValue = str | int | bool | None
ChangeCallback = Callable[[Session, str, Mapping[str, FieldValue]], None]
"""``on_change(session, event, fields)``, called inside the change's transaction."""

_MAX_ACTOR = 128
_R = TypeVar("_R")


@dataclass(frozen=True)
class CertificateRecord:
    ca_id: str
    sha256: str
    role: CertRole
    status: CertStatus
    subject: str
    not_after: datetime
    source: Source
    added_at: datetime
    added_by: str
    approved_by: str | None
    approved_at: datetime | None


@dataclass(frozen=True)
class CrlRecord:
    ca_id: str
    sha256: str
    issuer: str
    this_update: datetime
    next_update: datetime | None
    crl_number: int | None
    fetched_at: datetime
    source: Source
    added_by: str


@dataclass(frozen=True)
class CaRecord:
    """A CA with its non-removed certificates and the CRLs the snapshot would use."""

    ca_id: str
    display_name: str
    status: CaStatus
    added_at: datetime
    added_by: str
    certificates: tuple[CertificateRecord, ...]
    crls: tuple[CrlRecord, ...]


@dataclass(frozen=True)
class ChangeRecord:
    id: int
    at: datetime
    actor: str
    event: str
    ca_id: str | None
    fields: Mapping[str, FieldValue]
    audited: bool


@dataclass(frozen=True)
class Applied(Generic[_R]):
    """The outcome of an add: the record held, and whether this call changed anything
    (False when the identical material was already there: syncs repeat themselves)."""

    record: _R
    changed: bool


@dataclass(frozen=True)
class ImportReport:
    cas_added: tuple[str, ...]
    anchors_activated: int
    anchors_proposed: int
    intermediates_added: int
    crls_added: int


class DbTrustStore:
    """Trust material per CA in the service's database (see the module docstring).

    ``read_engine`` (default: ``engine``) is used by ``snapshot``/``list_cas``; pass an
    engine whose transactions do not take SQLite's write lock if you have one.
    ``now`` is the clock for ``added_at`` & co.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        on_change: ChangeCallback | None = None,
        read_engine: Engine | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._read_engine = read_engine or engine
        self._on_change = on_change
        self._now = now or (lambda: datetime.now(UTC))

    # --- reading -------------------------------------------------------------------

    def snapshot(self) -> TrustStore:
        """The immutable trust store validation uses: per active CA with at least one
        active anchor, its active anchors and intermediates and the newest CRL of each
        issuer, all in the order they were added."""
        with self._transaction(read=True) as session:
            cas = list(session.scalars(select(TrustCa.ca_id).where(_ca_active())))
            certs = session.scalars(
                select(TrustCertificate)
                .join(TrustCa, TrustCa.ca_id == TrustCertificate.ca_id)
                .where(_ca_active(), TrustCertificate.status == CertStatus.ACTIVE)
                .order_by(TrustCertificate.id)
            ).all()
            crls = session.scalars(
                select(TrustCrl).where(TrustCrl.id.in_(_newest_crl_ids())).order_by(TrustCrl.id)
            ).all()
            material: dict[str, CaMaterial] = {}
            for ca_id in cas:
                anchors = tuple(
                    c.der for c in certs if c.ca_id == ca_id and c.role == CertRole.ANCHOR
                )
                if not anchors:
                    continue  # a CA whose anchors are all pending or removed trusts nothing
                material[ca_id] = CaMaterial(
                    anchors=anchors,
                    intermediates=tuple(
                        c.der for c in certs if c.ca_id == ca_id and c.role == CertRole.INTERMEDIATE
                    ),
                    crls=tuple(r.der for r in crls if r.ca_id == ca_id),
                )
        return TrustStore(cas=material)

    def version(self) -> int:
        """A number that grows with every committed change: "has anything changed".

        The count of trust changes, not the highest id: on PostgreSQL changes to two CAs
        may commit out of id order, and a lower id committed late would not move the max.
        Rows are never deleted, so the count only grows."""
        with self._transaction(read=True) as session:
            return int(session.scalar(select(func.count()).select_from(TrustChange)) or 0)

    def list_cas(self, *, include_removed: bool = False) -> tuple[CaRecord, ...]:
        with self._transaction(read=True) as session:
            query = select(TrustCa).order_by(TrustCa.ca_id)
            if not include_removed:
                query = query.where(_ca_active())
            cas = session.scalars(query).all()
            certs = session.scalars(
                select(TrustCertificate)
                .where(TrustCertificate.status != CertStatus.REMOVED)
                .order_by(TrustCertificate.id)
            ).all()
            crls = session.scalars(
                select(TrustCrl).where(TrustCrl.id.in_(_newest_crl_ids())).order_by(TrustCrl.id)
            ).all()
            return tuple(
                CaRecord(
                    ca_id=ca.ca_id,
                    display_name=ca.display_name,
                    status=ca.status,
                    added_at=ca.added_at,
                    added_by=ca.added_by,
                    certificates=tuple(_cert_record(c) for c in certs if c.ca_id == ca.ca_id),
                    crls=tuple(_crl_record(r) for r in crls if r.ca_id == ca.ca_id),
                )
                for ca in cas
            )

    def changes(self, *, after_id: int = 0, limit: int = 1000) -> tuple[ChangeRecord, ...]:
        with self._transaction(read=True) as session:
            rows = session.scalars(
                select(TrustChange)
                .where(TrustChange.id > after_id)
                .order_by(TrustChange.id)
                .limit(limit)
            ).all()
            return tuple(
                ChangeRecord(
                    id=r.id,
                    at=r.at,
                    actor=r.actor,
                    event=r.event,
                    ca_id=r.ca_id,
                    fields=json.loads(r.fields_json),
                    audited=r.audited,
                )
                for r in rows
            )

    # --- CAs -----------------------------------------------------------------------

    def add_ca(self, ca_id: str, display_name: str, actor: str) -> Applied[str]:
        """Register a CA id (no material yet: it is not in the snapshot until an anchor
        is approved). Re-adding an active CA changes nothing."""
        with self._transaction() as session:
            changed = self._ensure_ca(session, ca_id, display_name, _actor(actor))
        return Applied(ca_id, changed)

    def remove_ca(self, ca_id: str, operator: str) -> None:
        """Remove a CA and all its certificates: it disappears from the next snapshot."""
        operator = _actor(operator)
        with self._transaction() as session:
            ca = _lock_ca(session, ca_id)
            now = self._now()
            ca.status, ca.removed_at, ca.removed_by = CaStatus.REMOVED, now, operator
            held = session.scalars(
                select(TrustCertificate).where(
                    TrustCertificate.ca_id == ca_id,
                    TrustCertificate.status != CertStatus.REMOVED,
                )
            ).all()
            for cert in held:
                cert.status, cert.removed_at, cert.removed_by = CertStatus.REMOVED, now, operator
            self._record(
                session, operator, "trust.ca_removed", ca_id, {"certificates_removed": len(held)}
            )

    # --- anchors: two operators ----------------------------------------------------

    def propose_anchor(
        self, ca_id: str, der: bytes, operator: str, *, display_name: str | None = None
    ) -> CertificateRecord:
        """Propose a trust anchor; it stays ``pending`` until ``approve_anchor`` by another
        operator. Creates the CA id if it is new (or re-opens a removed one: it trusts
        nothing until the anchor is approved)."""
        operator = _actor(operator)
        cert = _load_ca_certificate(der)
        with self._transaction() as session:
            self._ensure_ca(session, ca_id, display_name or ca_id, operator)
            _lock_ca(session, ca_id, allow_removed=True)
            existing = _held(session, ca_id, _sha256(der))
            if existing is not None:
                raise TrustChangeRefused(
                    f"this certificate is already {existing.status} in CA {ca_id!r} "
                    f"as {existing.role}",
                    ca_id=ca_id,
                    sha256=existing.sha256,
                    status=str(existing.status),
                )
            row = self._insert_cert(
                session, ca_id, der, cert, CertRole.ANCHOR, CertStatus.PENDING,
                Source.OPERATOR, operator,
            )  # fmt: skip
            self._record(
                session,
                operator,
                "trust.anchor_proposed",
                ca_id,
                {"sha256": row.sha256, "subject": row.subject},
            )
            return _cert_record(row)

    def approve_anchor(
        self, cert_sha256: str, operator: str, *, ca_id: str | None = None
    ) -> CertificateRecord:
        """Activate a pending anchor. The approver must not be the proposer."""
        operator = _actor(operator)
        sha = cert_sha256.strip().lower()
        with self._transaction() as session:
            row = _one_cert(session, sha, ca_id, (CertStatus.PENDING,))
            ca = _lock_ca(session, row.ca_id, allow_removed=True)
            session.refresh(row, with_for_update=True)
            if row.status != CertStatus.PENDING:
                raise TrustCertificateNotFound(
                    "the anchor is no longer pending", sha256=sha, status=str(row.status)
                )
            if row.added_by == operator:
                raise AnchorApprovalSameOperator(
                    f"operator {operator!r} proposed this anchor and cannot also approve it; "
                    "a second operator must run the approval",
                    sha256=sha,
                    ca_id=row.ca_id,
                    operator=operator,
                )
            now = self._now()
            row.status, row.approved_by, row.approved_at = CertStatus.ACTIVE, operator, now
            if ca.status == CaStatus.REMOVED:
                ca.status, ca.removed_at, ca.removed_by = CaStatus.ACTIVE, None, None
            self._record(
                session,
                operator,
                "trust.anchor_approved",
                row.ca_id,
                {"sha256": sha, "proposed_by": row.added_by},
            )
            return _cert_record(row)

    def remove_certificate(
        self, cert_sha256: str, operator: str, *, ca_id: str | None = None
    ) -> CertificateRecord:
        """Remove an anchor (pending: the proposal is withdrawn) or an intermediate."""
        operator = _actor(operator)
        sha = cert_sha256.strip().lower()
        with self._transaction() as session:
            row = _one_cert(session, sha, ca_id, (CertStatus.PENDING, CertStatus.ACTIVE))
            _lock_ca(session, row.ca_id, allow_removed=True)
            session.refresh(row, with_for_update=True)
            if row.status == CertStatus.REMOVED:
                raise TrustCertificateNotFound("the certificate was already removed", sha256=sha)
            was = row.status
            row.status, row.removed_at, row.removed_by = (
                CertStatus.REMOVED,
                self._now(),
                operator,
            )
            self._record(
                session,
                operator,
                "trust.certificate_removed",
                row.ca_id,
                {"sha256": sha, "role": str(row.role), "was": str(was)},
            )
            return _cert_record(row)

    # --- intermediates and CRLs: verified, from operators, the sync job or the CA ----

    def add_intermediate(
        self, ca_id: str, der: bytes, actor: str, source: Source
    ) -> Applied[CertificateRecord]:
        """Add an intermediate that an active anchor or intermediate of ``ca_id`` signed.

        Raises ``IntermediateUnchained`` otherwise, ``CaNotFound`` for an unknown or
        removed CA. The identical certificate already active: ``changed=False``.
        """
        actor = _actor(actor)
        cert = _load_ca_certificate(der)
        with self._transaction() as session:
            _lock_ca(session, ca_id)
            return self._add_intermediate(session, ca_id, der, cert, actor, source)

    def add_crl(self, ca_id: str, der: bytes, actor: str, source: Source) -> Applied[CrlRecord]:
        """Add a CRL signed by an active certificate of ``ca_id`` and newer than the one
        held for the same issuer (higher CRL number; without numbers, later thisUpdate).

        Raises ``CrlSignatureInvalid``, ``CrlNotNewer``, ``CaNotFound``; a delta CRL is
        refused (``TrustChangeRefused``): only full CRLs are stored so far. The identical
        CRL already held: ``changed=False``.
        """
        actor = _actor(actor)
        crl = _load_crl(der)
        with self._transaction() as session:
            _lock_ca(session, ca_id)
            return self._add_crl(session, ca_id, der, crl, actor, source)

    def import_directory(self, path: Path, actor: str) -> ImportReport:
        """Load a ``TrustStore.from_directory`` layout in one transaction.

        A CA id not yet in the database is bootstrapped: its anchors become active
        directly (the operator vouches for the directory). For a CA already present, new
        anchors are only *proposed* (pending a second operator), so re-importing cannot
        bypass the two-operator rule. Intermediates and CRLs are checked as in
        ``add_intermediate``/``add_crl``; identical material is skipped, so re-importing
        the same directory changes nothing.
        """
        actor = _actor(actor)
        loaded = TrustStore.from_directory(path)
        added: list[str] = []
        activated = proposed = intermediates = crls = 0
        with self._transaction() as session:
            for ca_id in loaded.ca_ids():
                material = loaded.material(ca_id)
                existing = session.get(TrustCa, ca_id)
                bootstrap = existing is None
                if existing is None:
                    self._ensure_ca(session, ca_id, ca_id, actor)
                    added.append(ca_id)
                elif existing.status != CaStatus.ACTIVE:
                    raise TrustChangeRefused(
                        f"CA {ca_id!r} was removed; re-add it by proposing and approving "
                        "an anchor, not by importing",
                        ca_id=ca_id,
                    )
                _lock_ca(session, ca_id)
                for der in material.anchors:
                    if _held(session, ca_id, _sha256(der)) is not None:
                        continue
                    cert = _load_ca_certificate(der)
                    status = CertStatus.ACTIVE if bootstrap else CertStatus.PENDING
                    row = self._insert_cert(
                        session, ca_id, der, cert, CertRole.ANCHOR, status,
                        Source.OPERATOR, actor,
                    )  # fmt: skip
                    if bootstrap:
                        row.approved_by, row.approved_at = actor, row.added_at
                        activated += 1
                    else:
                        proposed += 1
                    self._record(
                        session,
                        actor,
                        "trust.anchor_imported" if bootstrap else "trust.anchor_proposed",
                        ca_id,
                        {"sha256": row.sha256, "subject": row.subject, "path": str(path)},
                    )
                intermediates += self._import_intermediates(
                    session, ca_id, material.intermediates, actor
                )
                for der in material.crls:
                    if self._add_crl(
                        session, ca_id, der, _load_crl(der), actor, Source.OPERATOR
                    ).changed:
                        crls += 1
        return ImportReport(tuple(added), activated, proposed, intermediates, crls)

    # --- the audit trail ---------------------------------------------------------------

    def forward_unaudited(self) -> int:
        """Pass every change not yet audited (e.g. made by the operator CLI, which has no
        ``on_change``) to ``on_change``, oldest first, in one transaction; returns how
        many. The service calls this at start-up and whenever it refreshes its snapshot.
        """
        if self._on_change is None:
            raise TypeError("forward_unaudited needs a DbTrustStore with on_change")
        with self._transaction() as session:
            rows = session.scalars(
                select(TrustChange)
                .where(TrustChange.audited.is_(False))
                .order_by(TrustChange.id)
                .with_for_update()
            ).all()
            for row in rows:
                self._on_change(session, row.event, _audit_fields(row))
                row.audited = True
            return len(rows)

    # --- internals -------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, read: bool = False) -> Iterator[Session]:
        session = Session(bind=self._read_engine if read else self._engine, expire_on_commit=False)
        try:
            with session.begin():
                yield session
        except (OperationalError, IntegrityError) as exc:
            # IntegrityError: two transactions created the same CA id at once; a retry
            # finds it and goes on.
            raise TrustDatabaseUnavailable(
                "the trust store database could not complete the transaction; retry",
                reason=str(exc.orig),
            ) from exc
        finally:
            session.close()

    def _ensure_ca(self, session: Session, ca_id: str, display_name: str, actor: str) -> bool:
        if not CA_ID_PATTERN.match(ca_id):
            raise TrustChangeRefused(
                f"invalid CA id {ca_id!r}: use 1-64 of a-z, 0-9, '-', '_' (starting with a "
                "letter or digit)",
                ca_id=ca_id,
            )
        if session.get(TrustCa, ca_id) is not None:
            return False
        session.add(
            TrustCa(
                ca_id=ca_id,
                display_name=display_name,
                status=CaStatus.ACTIVE,
                added_at=self._now(),
                added_by=actor,
                removed_at=None,
                removed_by=None,
            )
        )
        session.flush()
        self._record(session, actor, "trust.ca_added", ca_id, {"display_name": display_name})
        return True

    def _import_intermediates(
        self, session: Session, ca_id: str, ders: tuple[bytes, ...], actor: str
    ) -> int:
        # Directory order is file-name order, not chain order: add whatever chains,
        # repeat while that makes progress, then report the first that never chained.
        pending = [d for d in ders if _held(session, ca_id, _sha256(d)) is None]
        added = 0
        while pending:
            left: list[bytes] = []
            for der in pending:
                try:
                    self._add_intermediate(
                        session, ca_id, der, _load_ca_certificate(der), actor, Source.OPERATOR
                    )
                    added += 1
                except IntermediateUnchained:
                    left.append(der)
            if len(left) == len(pending):
                der = left[0]
                self._add_intermediate(
                    session, ca_id, der, _load_ca_certificate(der), actor, Source.OPERATOR
                )  # raises IntermediateUnchained for the first one that never chained
            pending = left
        return added

    def _add_intermediate(
        self,
        session: Session,
        ca_id: str,
        der: bytes,
        cert: x509.Certificate,
        actor: str,
        source: Source,
    ) -> Applied[CertificateRecord]:
        sha = _sha256(der)
        existing = _held(session, ca_id, sha)
        if existing is not None and existing.status == CertStatus.ACTIVE:
            return Applied(_cert_record(existing), changed=False)
        if existing is not None:
            raise TrustChangeRefused(
                f"this certificate is a pending anchor of CA {ca_id!r}; approve or remove it",
                ca_id=ca_id,
                sha256=sha,
            )
        issuers = _active_certs(session, ca_id)
        signer = next((c for c in issuers if _issued_by(cert, c)), None)
        if signer is None:
            raise IntermediateUnchained(
                f"the certificate is not signed by an active anchor or intermediate of CA "
                f"{ca_id!r}; add its issuer first (anchors need two operators)",
                ca_id=ca_id,
                sha256=sha,
                issuer=cert.issuer.rfc4514_string(),
            )
        row = self._insert_cert(
            session, ca_id, der, cert, CertRole.INTERMEDIATE, CertStatus.ACTIVE, source, actor
        )
        self._record(
            session,
            actor,
            "trust.intermediate_added",
            ca_id,
            {
                "sha256": sha,
                "subject": row.subject,
                "issuer_sha256": _sha256(signer.public_bytes(Encoding.DER)),
                "source": str(source),
            },
        )
        return Applied(_cert_record(row), changed=True)

    def _add_crl(
        self,
        session: Session,
        ca_id: str,
        der: bytes,
        crl: x509.CertificateRevocationList,
        actor: str,
        source: Source,
    ) -> Applied[CrlRecord]:
        sha = _sha256(der)
        if _is_delta(crl):
            raise TrustChangeRefused(
                "delta CRLs are not stored yet; send the full CRL", ca_id=ca_id, sha256=sha
            )
        try:
            crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        except x509.ExtensionNotFound:
            # RFC 5280 5.2.1: conforming CRLs carry it, and validation matches CRLs to
            # issuers by it; a CRL without one would leave the CA's bidders unverifiable.
            raise TrustChangeRefused(
                "the CRL has no authorityKeyIdentifier (RFC 5280 5.2.1); ask the CA for a "
                "conforming CRL",
                ca_id=ca_id,
                sha256=sha,
            ) from None
        signer = next((c for c in _active_certs(session, ca_id) if _crl_signed_by(crl, c)), None)
        if signer is None:
            raise CrlSignatureInvalid(
                f"the CRL is not signed by an active certificate of CA {ca_id!r} "
                "(indirect CRLs are not accepted)",
                ca_id=ca_id,
                sha256=sha,
                issuer=crl.issuer.rfc4514_string(),
            )
        issuer_key = _issuer_key(crl, signer)
        held = session.scalars(
            select(TrustCrl)
            .where(TrustCrl.ca_id == ca_id, TrustCrl.issuer_key == issuer_key)
            .order_by(TrustCrl.id.desc())
            .limit(1)
        ).first()
        if held is not None and held.sha256 == sha:
            return Applied(_crl_record(held), changed=False)
        number = _crl_number(crl)
        this_update = crl.last_update_utc
        if held is not None:
            _require_newer(held, number, this_update, ca_id, sha)
        row = TrustCrl(
            ca_id=ca_id,
            der=der,
            sha256=sha,
            issuer=crl.issuer.rfc4514_string(),
            issuer_key=issuer_key,
            this_update=this_update,
            next_update=crl.next_update_utc,
            crl_number=None if number is None else str(number),
            fetched_at=self._now(),
            source=source,
            added_by=actor,
        )
        session.add(row)
        session.flush()
        self._record(
            session,
            actor,
            "trust.crl_added",
            ca_id,
            {
                "sha256": sha,
                "issuer": row.issuer,
                "crl_number": row.crl_number,
                "this_update": this_update.isoformat(),
                "revoked": len(crl),
                "source": str(source),
            },
        )
        return Applied(_crl_record(row), changed=True)

    def _insert_cert(
        self,
        session: Session,
        ca_id: str,
        der: bytes,
        cert: x509.Certificate,
        role: CertRole,
        status: CertStatus,
        source: Source,
        actor: str,
    ) -> TrustCertificate:
        row = TrustCertificate(
            ca_id=ca_id,
            role=role,
            der=der,
            sha256=_sha256(der),
            subject=cert.subject.rfc4514_string(),
            not_after=cert.not_valid_after_utc,
            status=status,
            source=source,
            added_at=self._now(),
            added_by=actor,
            approved_by=None,
            approved_at=None,
            removed_at=None,
            removed_by=None,
        )
        session.add(row)
        session.flush()
        return row

    def _record(
        self,
        session: Session,
        actor: str,
        event: str,
        ca_id: str | None,
        fields: Mapping[str, FieldValue],
    ) -> None:
        row = TrustChange(
            at=self._now(),
            actor=actor,
            event=event,
            ca_id=ca_id,
            fields_json=json.dumps(dict(fields), sort_keys=True, separators=(",", ":")),
            audited=self._on_change is not None,
        )
        session.add(row)
        session.flush()
        if self._on_change is not None:
            self._on_change(session, event, _audit_fields(row))


# --- module helpers -----------------------------------------------------------------


def _actor(name: str) -> str:
    name = name.strip()
    if not name or len(name) > _MAX_ACTOR:
        raise TrustChangeRefused(
            f"name who makes the change (1-{_MAX_ACTOR} characters)", actor=name[:_MAX_ACTOR]
        )
    return name


def _sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _ca_active() -> ColumnElement[bool]:
    return TrustCa.status == CaStatus.ACTIVE


def _newest_crl_ids() -> Select[int]:
    # Only newer CRLs are ever accepted, so the newest per issuer is the highest id.
    return select(func.max(TrustCrl.id)).group_by(TrustCrl.ca_id, TrustCrl.issuer_key)


def _lock_ca(session: Session, ca_id: str, *, allow_removed: bool = False) -> TrustCa:
    ca = session.scalars(
        select(TrustCa)
        .where(TrustCa.ca_id == ca_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if ca is None or (ca.status != CaStatus.ACTIVE and not allow_removed):
        raise CaNotFound(
            f"no active CA {ca_id!r} in the trust store; list them with 'sealed-bid ca list'",
            ca_id=ca_id,
        )
    return ca


def _held(session: Session, ca_id: str, sha: str) -> TrustCertificate | None:
    """The pending or active row of this certificate in this CA, if any."""
    return session.scalars(
        select(TrustCertificate).where(
            TrustCertificate.ca_id == ca_id,
            TrustCertificate.sha256 == sha,
            TrustCertificate.status != CertStatus.REMOVED,
        )
    ).first()


def _one_cert(
    session: Session, sha: str, ca_id: str | None, statuses: tuple[CertStatus, ...]
) -> TrustCertificate:
    query = select(TrustCertificate).where(
        TrustCertificate.sha256 == sha, TrustCertificate.status.in_(statuses)
    )
    if ca_id is not None:
        query = query.where(TrustCertificate.ca_id == ca_id)
    rows = session.scalars(query).all()
    wanted = " or ".join(str(s) for s in statuses)
    if not rows:
        raise TrustCertificateNotFound(
            f"no {wanted} certificate with SHA-256 {sha} in the trust store",
            sha256=sha,
            ca_id=ca_id,
        )
    if len(rows) > 1:
        raise TrustChangeRefused(
            f"the certificate {sha} is held by several CAs; name one with the CA id",
            sha256=sha,
            ca_ids=sorted(r.ca_id for r in rows),
        )
    return rows[0]


def _active_certs(session: Session, ca_id: str) -> list[x509.Certificate]:
    ders = session.scalars(
        select(TrustCertificate.der)
        .where(TrustCertificate.ca_id == ca_id, TrustCertificate.status == CertStatus.ACTIVE)
        .order_by(TrustCertificate.id)
    ).all()
    return [x509.load_der_x509_certificate(d) for d in ders]


def _load_ca_certificate(der: bytes) -> x509.Certificate:
    """Parse strictly (asn1crypto, as validation will) and require a CA certificate."""
    parse_certificate(der)
    try:
        cert = x509.load_der_x509_certificate(der)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    except ValueError as exc:
        raise CertificateMalformed("a certificate is not valid DER X.509") from exc
    if constraints is None or not constraints.ca:
        raise TrustChangeRefused(
            "not a CA certificate (basicConstraints cA is not set); only CA certificates "
            "are trust material",
            sha256=_sha256(der),
        )
    return cert


def _load_crl(der: bytes) -> x509.CertificateRevocationList:
    parse_crl(der)
    try:
        return x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise CertificateMalformed("a CRL is not valid DER") from exc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` (a CA certificate) names and signed ``cert``."""
    if not _is_ca(issuer):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` is named as the CRL's issuer, may sign CRLs and signed it."""
    if crl.issuer != issuer.subject or not _is_ca(issuer):
        return False
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.crl_sign:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        public_key = issuer.public_key()
        return crl.is_signature_valid(public_key)  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _is_delta(crl: x509.CertificateRevocationList) -> bool:
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        return False
    return True


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _issuer_key(crl: x509.CertificateRevocationList, signer: x509.Certificate) -> str:
    """The issuer's name plus the key that really signed the CRL (not the CRL's own,
    optional AKI claim, which would let a CRL without one start a second "newest"):
    a re-keyed CA under the same name is a separate issuer, whose numbers start afresh."""
    name = crl.issuer.public_bytes()
    key = signer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(len(name).to_bytes(4, "big") + name + key).hexdigest()


def _require_newer(
    held: TrustCrl, number: int | None, this_update: datetime, ca_id: str, sha: str
) -> None:
    held_number = None if held.crl_number is None else int(held.crl_number)
    if number is not None and held_number is not None:
        # Numbers decide; a higher number with an earlier thisUpdate is not a newer CRL.
        newer = number > held_number and this_update >= held.this_update
    else:
        newer = this_update > held.this_update
    if not newer:
        raise CrlNotNewer(
            f"the CRL (number {number}, thisUpdate {this_update.isoformat()}) is not newer "
            f"than the one held (number {held_number}, thisUpdate "
            f"{held.this_update.isoformat()}); nothing to do",
            ca_id=ca_id,
            sha256=sha,
            held_sha256=held.sha256,
        )


def _cert_record(row: TrustCertificate) -> CertificateRecord:
    return CertificateRecord(
        ca_id=row.ca_id,
        sha256=row.sha256,
        role=row.role,
        status=row.status,
        subject=row.subject,
        not_after=row.not_after,
        source=row.source,
        added_at=row.added_at,
        added_by=row.added_by,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
    )


def _crl_record(row: TrustCrl) -> CrlRecord:
    return CrlRecord(
        ca_id=row.ca_id,
        sha256=row.sha256,
        issuer=row.issuer,
        this_update=row.this_update,
        next_update=row.next_update,
        crl_number=None if row.crl_number is None else int(row.crl_number),
        fetched_at=row.fetched_at,
        source=row.source,
        added_by=row.added_by,
    )


def _audit_fields(row: TrustChange) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = json.loads(row.fields_json)
    fields.update(
        trust_change_id=row.id,
        ca_id=row.ca_id,
        actor=row.actor,
        changed_at=row.at.isoformat(),
    )
    return fields
