"""Assembling the service from settings: the local development set-up (SoftHSM2 token,
dev PKI) and the wiring of token, store, trust store and services.

``init_local`` is for the embedded default only; in production the token and the
platform certificates come from the operator (hsm_config/README.md, docs/operator-guide.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.revocation import RevocationSource
from ca_bridge.store_models import Source, create_trust_schema
from ca_bridge.trust_snapshots import TrustSnapshots
from sealed_bid.api.authority_auth import anchors_pem
from sealed_bid.api.server import AuthorityListener, SealedBidServer, TlsMaterial
from sealed_bid.api.servicers import Services
from sealed_bid.api.trust_servicer import TrustService
from sealed_bid.config import Settings
from sealed_bid.devpki import (
    BIDDER_CA_ID,
    PLATFORM_KEY_NAMES,
    DevPki,
    issue_authority_certs,
    issue_officer_certs,
    issue_platform_certs,
    load_dev_pki,
    make_dev_pki,
    refresh_dev_crls,
)
from sealed_bid.domain.clock import Clock
from sealed_bid.errors import ConfigError
from sealed_bid.hsm.module import find_module, is_softhsm
from sealed_bid.hsm.profile import probe, require_profile
from sealed_bid.hsm.quorum_token import QuorumTokens
from sealed_bid.hsm.signer import TokenSigner
from sealed_bid.hsm.softhsm import init_softhsm_token
from sealed_bid.hsm.token import Token
from sealed_bid.service.ceremony import CeremonyService
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.key_destruction import KeyDestructionService
from sealed_bid.service.key_release import KeyReleaseService
from sealed_bid.service.opening import OpeningService
from sealed_bid.service.responses import BidderOpeningService
from sealed_bid.service.submission import SubmissionService
from sealed_bid.service.tenders import TenderService
from sealed_bid.service.withdrawal import WithdrawalService
from sealed_bid.storage.audit_log import AuditLog, FieldValue
from sealed_bid.storage.blobstore import BlobStore
from sealed_bid.storage.db import create_schema, make_engine, read_only_engine
from sealed_bid.timestamping.client import TimestampClient
from sealed_bid.timestamping.dev_tsa import dev_tsa_layout, make_dev_tsa

log = logging.getLogger("sealed_bid.app")


def init_local(settings: Settings, now: datetime) -> DevPki:
    """Create (idempotently) the SoftHSM2 token, the platform keys on it, the dev PKI and
    the certificates of the token-held platform keys."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if is_softhsm(find_module(settings)):
        init_softhsm_token(settings)
    with Token.open(settings) as token:
        token.ensure_platform_keys()
        pki_dir = settings.pki_path
        pki = load_dev_pki(pki_dir) if pki_dir.exists() else make_dev_pki(pki_dir, now)
        missing = {
            n: token.public_key(n) for n in PLATFORM_KEY_NAMES if not pki.platform_cert(n).exists()
        }
        if missing:
            issue_platform_certs(pki, missing, now)
        refresh_dev_crls(pki, now)
        issue_authority_certs(pki, now)
        issue_officer_certs(pki, now)
    tsa_dir = settings.pki_path / "tsa"
    if not dev_tsa_layout(tsa_dir).cert.is_file():
        make_dev_tsa(tsa_dir, now)
    _load_dev_trust(settings, pki)
    return pki


def _load_dev_trust(settings: Settings, pki: DevPki) -> None:
    """Put the dev bidder CA into the database trust store (first run), or its refreshed
    CRLs (later runs). The running service forwards these changes to the audit log."""
    engine = make_engine(settings.db_url)
    try:
        create_schema(engine)
        create_trust_schema(engine)
        store = DbTrustStore(engine)
        if not store.list_cas(include_removed=True):
            store.import_directory(pki.trust_dir, "sealed-bid init")
            return
        for crl in (pki.bidder_root_crl, pki.bidder_issuing_crl):
            store.add_crl(BIDDER_CA_ID, crl.read_bytes(), "sealed-bid init", Source.OPERATOR)
    finally:
        engine.dispose()


def _cert_der(path: Path) -> bytes:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc}") from None


@dataclass
class Application:
    """Everything one running service owns; ``close()`` releases the token session."""

    context: ServiceContext
    services: Services
    trust_store: DbTrustStore
    """The store behind ``context.trust``: its changes are audited in their transaction."""

    def close(self) -> None:
        self.context.engine.dispose()
        self.context.token.close()


def open_application(settings: Settings, clock: Clock) -> Application:
    """Open the token, database, blob store and trust store named by ``settings``. Works
    on any PKCS#11 module and any certificates laid out as the settings say; the dev PKI
    is only the default layout."""
    token = Token.open(settings)
    try:
        profile = require_profile(probe(token))
        engine = make_engine(settings.db_url)
        create_schema(engine)
        create_trust_schema(engine)

        def cert(label: str) -> bytes:
            return _cert_der(settings.platform_cert_path(label))

        audit_signer = TokenSigner(token, "platform-audit", cert("platform-audit"))
        audit = AuditLog(audit_signer.sign)
        trust_store = _trust_store(settings, engine, audit, clock)
        trust = TrustSnapshots(
            trust_store,
            check_interval=settings.limits.trust_refresh_seconds,
            forward_unaudited=True,
        )
        ctx = ServiceContext(
            settings=settings,
            clock=clock,
            token=token,
            engine=engine,
            blobs=BlobStore(settings.blob_dir),
            audit=audit,
            trust=trust,
            oaep_hashes=profile.oaep_hashes,
            receipt_signer=TokenSigner(token, "platform-receipt", cert("platform-receipt")),
            tender_ca_signer=TokenSigner(token, "platform-tender-ca", cert("platform-tender-ca")),
            # One per process: its cache and circuit breakers are shared by all requests.
            revocation=RevocationSource(),
            timestamps=_timestamp_client(settings),
            quorum_tokens=QuorumTokens(settings),
        )
    except BaseException:
        token.close()
        raise
    log.info(
        "service.ready token=%s oaep=%s db=%s",
        profile.token_label,
        ",".join(profile.oaep_hashes),
        engine.url.get_backend_name(),
    )
    services = Services(
        tenders=TenderService(ctx),
        submissions=SubmissionService(ctx),
        withdrawals=WithdrawalService(ctx),
        opening=OpeningService(ctx),
        ceremony=CeremonyService(ctx),
        responses=BidderOpeningService(ctx),
        keys=KeyDestructionService(ctx),
        key_release=KeyReleaseService(ctx),
    )
    return Application(ctx, services, trust_store)


def _timestamp_client(settings: Settings) -> TimestampClient | None:
    """The configured TSA, trusted through ``tsa_trust_file``; None when no URL is set."""
    if not settings.tsa_url:
        log.warning("service.no_tsa: receipts carry no time stamp and openings are refused")
        return None
    try:
        roots = [
            cert.public_bytes(serialization.Encoding.DER)
            for cert in x509.load_pem_x509_certificates(settings.tsa_trust_path.read_bytes())
        ]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the TSA roots {settings.tsa_trust_path}: {exc}") from None
    return TimestampClient(
        settings.tsa_url, roots, timeout_seconds=settings.limits.tsa_timeout_seconds
    )


def _trust_store(settings: Settings, engine: Engine, audit: AuditLog, clock: Clock) -> DbTrustStore:
    """The trust store lives in the database; every change to it goes to the audit log in
    its own transaction. A first start imports the configured trust directory."""

    def on_change(session: Session, event: str, fields: Mapping[str, FieldValue]) -> None:
        audit.append(session, clock.now(), event, None, None, fields)

    store = DbTrustStore(engine, on_change=on_change, read_engine=read_only_engine(engine))
    if not store.list_cas(include_removed=True) and settings.trust_path.is_dir():
        store.import_directory(settings.trust_path, "service start-up")
    return store


def build_server(
    app: Application,
    public: str | None = None,
    operator: str | None = None,
    authority: str | None = None,
) -> SealedBidServer:
    """The service's listeners; ``None`` addresses come from the settings. The authority
    listener exists when its address is not empty."""
    settings = app.context.settings
    try:
        tls = TlsMaterial.from_files(
            settings.tls_key_path, settings.tls_cert_path, settings.operator_ca_path
        )
    except OSError as exc:
        raise ConfigError(f"cannot read TLS material: {exc}") from None
    authority_address = settings.authority_listen if authority is None else authority
    snapshots = app.context.trust
    return SealedBidServer(
        app.services,
        tls,
        settings.limits,
        public or settings.public_listen,
        operator or settings.operator_listen,
        authority=AuthorityListener(
            authority_address,
            TrustService(app.trust_store, snapshots),
            lambda: anchors_pem(snapshots.current()),
        )
        if authority_address
        else None,
        context=app.context,
    )
