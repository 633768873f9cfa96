"""The CA sync job: pull each CA's published certificate bundle and CRLs over HTTP and
hand them to the trust store.

Owns the list of sources (table ``trust_ca_sources``: which URL publishes what for which
CA, who added it and when) and one pass over them. It decides nothing about trust: every
intermediate goes through ``DbTrustStore.add_intermediate`` (must chain to an active
anchor or intermediate of that CA), every CRL through ``add_crl`` (signed by that CA,
newer than the one held), and the store records each change in the trust-change log.

It must never add an anchor (a self-signed certificate in a bundle is skipped: anchors
change only by two operators, ADR 0010), and one failing source (time-out, HTTP error,
invalid material) never stops the others: each source gets its own result.
"""

from __future__ import annotations

import enum
import hashlib
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from asn1crypto import pem
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sqlalchemy import Engine, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ca_bridge.db_trust_store import Applied, DbTrustStore
from ca_bridge.errors import CaBridgeError, CertificateMalformed
from ca_bridge.fetching import FetchFailed, HttpFetcher
from ca_bridge.store_models import (
    _SERIAL,
    CaStatus,
    CertRole,
    Source,
    TrustBase,
    TrustCa,
    _str_enum,
)
from ca_bridge.trust_errors import (
    CaNotFound,
    IntermediateUnchained,
    TrustChangeRefused,
    TrustDatabaseUnavailable,
)

SYNC_ACTOR = "ca-sync"
"""The actor recorded in the trust-change log for what the sync job adds."""

SOURCE_UNREACHABLE = "SOURCE_UNREACHABLE"
"""Result code of a source that could not be fetched (time-out, connection, HTTP status,
too large, circuit open): retry later. Not an error class: nothing raises it."""

_MAX_URL = 2048
_MAX_ACTOR = 128


class SourceKind(enum.StrEnum):
    BUNDLE = "bundle"
    """PEM certificates (the CA's intermediates; its root may be included, and is skipped)."""
    CRL = "crl"
    """One CRL, DER or PEM."""


class TrustCaSource(TrustBase):
    """A URL where a CA publishes trust material. Sync never changes this table."""

    __tablename__ = "trust_ca_sources"
    __table_args__ = (UniqueConstraint("ca_id", "kind", "url", name="uq_trust_ca_sources"),)

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    ca_id: Mapped[str] = mapped_column(ForeignKey("trust_cas.ca_id"))
    kind: Mapped[SourceKind] = mapped_column(_str_enum(SourceKind, "trust_source_kind"))
    url: Mapped[str] = mapped_column(String(_MAX_URL))
    added_by: Mapped[str] = mapped_column(String(_MAX_ACTOR))
    added_at: Mapped[datetime]


def create_source_schema(engine: Engine) -> None:
    """Create ``trust_ca_sources`` if it does not exist (after ``create_trust_schema``)."""
    TrustBase.metadata.create_all(engine, tables=[TrustCaSource.__table__])  # type: ignore[list-item]


@dataclass(frozen=True)
class SourceRecord:
    id: int
    ca_id: str
    kind: SourceKind
    url: str
    added_by: str
    added_at: datetime


class SyncSources:
    """The configured sources, in the trust store's database."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._now = now or (lambda: datetime.now(UTC))

    def add(self, ca_id: str, kind: SourceKind, url: str, operator: str) -> Applied[SourceRecord]:
        """Register a URL for an active CA; the same (CA, kind, URL) again: ``changed=False``."""
        operator = operator.strip()
        if not operator or len(operator) > _MAX_ACTOR:
            raise TrustChangeRefused(f"name who adds the source (1-{_MAX_ACTOR} characters)")
        _check_url(url)
        with self._session() as session:
            ca = session.get(TrustCa, ca_id)
            if ca is None or ca.status != CaStatus.ACTIVE:
                raise CaNotFound(
                    f"no active CA {ca_id!r} in the trust store; list them with "
                    "'sealed-bid ca list'",
                    ca_id=ca_id,
                )
            held = session.scalars(
                select(TrustCaSource).where(
                    TrustCaSource.ca_id == ca_id,
                    TrustCaSource.kind == kind,
                    TrustCaSource.url == url,
                )
            ).first()
            if held is not None:
                return Applied(_source_record(held), changed=False)
            row = TrustCaSource(
                ca_id=ca_id, kind=kind, url=url, added_by=operator, added_at=self._now()
            )
            session.add(row)
            session.flush()
            return Applied(_source_record(row), changed=True)

    def remove(self, ca_id: str, url: str) -> int:
        """Forget every source of ``ca_id`` with this URL; returns how many."""
        with self._session() as session:
            rows = session.scalars(
                select(TrustCaSource).where(TrustCaSource.ca_id == ca_id, TrustCaSource.url == url)
            ).all()
            for row in rows:
                session.delete(row)
            return len(rows)

    def list(self, *, active_cas_only: bool = True) -> tuple[SourceRecord, ...]:
        """Per CA, bundles before CRLs (a CRL may be signed by an intermediate the bundle
        brings), then in the order they were added."""
        with self._session() as session:
            query = select(TrustCaSource).join(TrustCa, TrustCa.ca_id == TrustCaSource.ca_id)
            if active_cas_only:
                query = query.where(TrustCa.status == CaStatus.ACTIVE)
            rows = session.scalars(query).all()
            records = [_source_record(r) for r in rows]
        order = {SourceKind.BUNDLE: 0, SourceKind.CRL: 1}
        return tuple(sorted(records, key=lambda r: (r.ca_id, order[r.kind], r.id)))

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = Session(bind=self._engine, expire_on_commit=False)
        try:
            with session.begin():
                yield session
        except (OperationalError, IntegrityError) as exc:
            raise TrustDatabaseUnavailable(
                "the trust store database could not complete the transaction; retry",
                reason=str(exc.orig),
            ) from exc
        finally:
            session.close()


Outcome = Literal["changed", "unchanged", "error"]


@dataclass(frozen=True)
class SourceResult:
    """What one source gave in one pass. ``code`` is set for errors: a ``CaBridgeError``
    code (``CRL_NOT_NEWER``, ``INTERMEDIATE_UNCHAINED``, ``CERTIFICATE_MALFORMED``, ...)
    or ``SOURCE_UNREACHABLE`` (then ``reason`` is the fetcher's: ``timeout``, ...)."""

    source: SourceRecord
    outcome: Outcome
    detail: str = ""
    code: str | None = None
    reason: str | None = None

    def line(self) -> str:
        head = f"{self.source.ca_id}  {self.source.kind:<6}  {self.source.url}  "
        if self.outcome == "error":
            return head + f"error {self.code}: {self.detail}"
        return head + self.outcome + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class SyncReport:
    results: tuple[SourceResult, ...]

    @property
    def ok(self) -> bool:
        """Every source was reachable and its material valid."""
        return all(r.outcome != "error" for r in self.results)

    def lines(self) -> list[str]:
        return [r.line() for r in self.results]


class CaSync:
    """One pass over every source of every active CA (``run_once``)."""

    def __init__(
        self,
        store: DbTrustStore,
        sources: SyncSources,
        fetcher: HttpFetcher,
        *,
        actor: str = SYNC_ACTOR,
    ) -> None:
        self._store = store
        self._sources = sources
        self._fetcher = fetcher
        self._actor = actor

    def run_once(self) -> SyncReport:
        sources = self._sources.list()
        held = self._store.list_cas()
        anchors = {
            ca.ca_id: {c.sha256 for c in ca.certificates if c.role == CertRole.ANCHOR}
            for ca in held
        }
        crls = {ca.ca_id: {(r.issuer, r.crl_number, r.this_update) for r in ca.crls} for ca in held}
        results = []
        for source in sources:
            try:
                data = self._fetch(source.url)
                if source.kind == SourceKind.BUNDLE:
                    result = self._apply_bundle(source, data, anchors.get(source.ca_id, set()))
                else:
                    result = self._apply_crls(source, data, crls.get(source.ca_id, set()))
            except FetchFailed as exc:
                detail = exc.reason + (f" ({exc.detail})" if exc.detail else "")
                result = SourceResult(source, "error", detail, SOURCE_UNREACHABLE, exc.reason)
            except CaBridgeError as exc:
                result = SourceResult(source, "error", exc.message, exc.code)
            results.append(result)
        return SyncReport(tuple(results))

    def _fetch(self, url: str) -> bytes:
        deadline = self._fetcher.now() + self._fetcher.limits.request_timeout_seconds
        return self._fetcher.get(url, deadline)

    def _apply_bundle(self, source: SourceRecord, data: bytes, anchors: set[str]) -> SourceResult:
        ders = _blocks(data, "CERTIFICATE")
        pending: list[bytes] = []
        unknown_roots = 0
        for der in ders:
            if _self_signed(der):
                unknown_roots += _sha256(der) not in anchors
            else:
                pending.append(der)
        added = 0
        first_error: CaBridgeError | None = None
        last_unchained: IntermediateUnchained | None = None
        # Bundle order need not be chain order: add what chains, repeat while that helps.
        while pending:
            left = []
            for der in pending:
                try:
                    added += self._store.add_intermediate(
                        source.ca_id, der, self._actor, Source.SYNC
                    ).changed
                except IntermediateUnchained as exc:
                    left.append(der)
                    last_unchained = exc
                except TrustChangeRefused as exc:
                    first_error = first_error or exc
            if len(left) == len(pending):
                first_error = first_error or last_unchained
                break
            pending = left
        notes = [f"{added} intermediate(s) added"] if added else []
        if unknown_roots:
            notes.append(
                f"{unknown_roots} self-signed certificate(s) not held as anchors skipped "
                "(anchors are added by two operators, never by sync)"
            )
        if first_error is not None:
            notes.insert(0, first_error.message)
            return SourceResult(source, "error", "; ".join(notes), first_error.code)
        return SourceResult(source, "changed" if added else "unchanged", "; ".join(notes))

    def _apply_crls(
        self, source: SourceRecord, data: bytes, held: set[tuple[str, int | None, datetime]]
    ) -> SourceResult:
        added: list[str] = []
        for der in _blocks(data, "X509 CRL"):
            if _same_crl_resigned(der, held):
                continue  # a CA that signs on each request (ECDSA): same CRL, new bytes
            applied = self._store.add_crl(source.ca_id, der, self._actor, Source.SYNC)
            if applied.changed:
                added.append(f"CRL #{applied.record.crl_number} of {applied.record.issuer}")
        if added:
            return SourceResult(source, "changed", ", ".join(added) + " added")
        return SourceResult(source, "unchanged")


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > _MAX_URL:
        raise TrustChangeRefused(
            f"a source is an http:// or https:// URL of at most {_MAX_URL} characters",
            url=url[:200],
        )


def _blocks(data: bytes, pem_type: str) -> list[bytes]:
    """The DER items of a PEM file of ``pem_type`` blocks, or ``data`` itself (one DER item)."""
    if not pem.detect(data):
        return [data]
    try:
        found = [bytes(d) for kind, _, d in pem.unarmor(data, multiple=True) if kind == pem_type]
    except ValueError as exc:
        raise CertificateMalformed(f"the source is not valid PEM: {exc}") from None
    if not found:
        raise CertificateMalformed(f"the source holds no PEM {pem_type!r} block")
    return found


def _self_signed(der: bytes) -> bool:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateMalformed("a certificate of the bundle is not valid DER X.509") from exc
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False  # self-issued by an older key (a key roll-over link): an intermediate
    return True


def _same_crl_resigned(der: bytes, held: set[tuple[str, int | None, datetime]]) -> bool:
    """Whether the store holds, as newest, a CRL with this issuer, number and thisUpdate."""
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        return False  # add_crl reports it as malformed
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return (crl.issuer.rfc4514_string(), number, crl.last_update_utc) in held


def _sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _source_record(row: TrustCaSource) -> SourceRecord:
    return SourceRecord(
        id=row.id,
        ca_id=row.ca_id,
        kind=row.kind,
        url=row.url,
        added_by=row.added_by,
        added_at=row.added_at,
    )
