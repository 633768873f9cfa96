"""DbTrustStore: what may change the trust store, what the snapshot then holds, and that
every change is logged (and audited) in its own transaction. On SQLite and PostgreSQL,
with the real dev PKI and certificates/CRLs built with cryptography."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session

from ca_bridge import errors, trust_errors
from ca_bridge.db_trust_store import DbTrustStore, FieldValue
from ca_bridge.store_models import CertRole, CertStatus, Source, TrustBase, create_trust_schema
from ca_bridge.trust_snapshots import TrustSnapshots
from ca_bridge.trust_store import TrustStore
from ca_bridge.validation import SignerPolicy, validate_signer
from sealed_bid.devpki import BIDDER_CA_ID, DevPki
from sealed_bid.storage.audit_log import AuditLog
from sealed_bid.storage.db import create_schema, make_engine, unit_of_work
from sealed_bid.storage.models import AuditEntry, Base

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
CA = BIDDER_CA_ID
SignerCerts = tuple[bytes, list[bytes]]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a schema private to this module's tests."""
    schema = f"sb_trust_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _create_all(engine: Engine) -> None:
    create_schema(engine)
    create_trust_schema(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on empty service and trust schemas (the service's own tables too: the
    audit tests append to its log)."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'sealed-bid.db'}")
        _create_all(eng)
    else:
        eng = make_engine(request.getfixturevalue("pg_schema_url"))
        _create_all(eng)
        tables = [*Base.metadata.sorted_tables, *TrustBase.metadata.sorted_tables]
        with eng.begin() as conn:
            names = ", ".join(t.name for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        _create_all(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine: Engine) -> DbTrustStore:
    return DbTrustStore(engine)


@pytest.fixture
def imported(store: DbTrustStore, dev_pki: DevPki) -> DbTrustStore:
    """The store after importing the dev PKI's trust directory."""
    store.import_directory(dev_pki.trust_dir, "alice")
    return store


# --- certificates and CRLs built for the tests --------------------------------------


def _key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sealed Bid Dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def ca_certificate(
    subject: x509.Name, issuer: x509.Name, signing_key: PrivateKey, now: datetime
) -> bytes:
    """A CA certificate for a fresh key, with ``issuer`` as issuer name, signed by
    ``signing_key`` (which may or may not belong to that issuer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signing_key, hashes.SHA256())
    )
    return _der(cert)


def crl(
    issuer: x509.Certificate,
    signing_key: PrivateKey,
    number: int,
    this_update: datetime,
    revoked: tuple[int, ...] = (),
) -> bytes:
    """A full CRL naming ``issuer`` (with its key id), signed by ``signing_key``."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this_update)
            .build()
        )
    return builder.sign(signing_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _issuing_crl_number(dev_pki: DevPki) -> int:
    held = x509.load_der_x509_crl(dev_pki.bidder_issuing_crl.read_bytes())
    return held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _held_issuing_crl_time(dev_pki: DevPki) -> datetime:
    return x509.load_der_x509_crl(dev_pki.bidder_issuing_crl.read_bytes()).last_update_utc


def _pem_ders(path: Path) -> list[bytes]:
    return [_der(c) for c in x509.load_pem_x509_certificates(path.read_bytes())]


# --- import and the snapshot ----------------------------------------------------------


def test_importing_the_dev_trust_dir_gives_the_same_store_as_reading_the_directory(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    from_db = imported.snapshot()
    from_dir = TrustStore.from_directory(dev_pki.trust_dir)

    assert from_db == from_dir
    assert from_db.ca_ids() == (CA,)
    material, expected = from_db.material(CA), from_dir.material(CA)
    assert material.anchors == expected.anchors
    assert material.intermediates == expected.intermediates
    assert sorted(material.crls) == sorted(expected.crls)


def test_reimporting_the_same_directory_changes_nothing(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    version = imported.version()

    report = imported.import_directory(dev_pki.trust_dir, "bob")

    assert (report.cas_added, report.anchors_activated, report.anchors_proposed) == ((), 0, 0)
    assert (report.intermediates_added, report.crls_added) == (0, 0)
    assert imported.version() == version


def test_imported_anchors_are_active_and_record_who_imported_them(
    imported: DbTrustStore,
) -> None:
    (ca,) = imported.list_cas()
    anchors = [c for c in ca.certificates if c.role == CertRole.ANCHOR]

    assert [a.status for a in anchors] == [CertStatus.ACTIVE]
    assert anchors[0].added_by == "alice"
    assert anchors[0].source == Source.OPERATOR
    assert len(ca.crls) == 2


def test_the_snapshot_validates_a_good_bidder_like_the_directory_store(
    imported: DbTrustStore,
    signer_certs: Callable[[str], SignerCerts],
    pki_now: datetime,
) -> None:
    leaf, chain = signer_certs("alpha")

    result = validate_signer(leaf, chain, pki_now, imported.snapshot(), [CA], SignerPolicy())

    assert result.ca_id == CA


# --- intermediates --------------------------------------------------------------------


def test_intermediate_signed_by_the_cas_anchor_is_added_and_in_the_snapshot(
    imported: DbTrustStore, dev_pki: DevPki, pki_now: datetime
) -> None:
    root = _cert(dev_pki.bidder_root.cert)
    new = ca_certificate(
        _name("Dev Bidder Issuing CA 2"), root.subject, _key(dev_pki.bidder_root.key), pki_now
    )

    applied = imported.add_intermediate(CA, new, "sync-job", Source.SYNC)

    assert applied.changed
    assert applied.record.status == CertStatus.ACTIVE
    assert applied.record.source == Source.SYNC
    assert new in imported.snapshot().material(CA).intermediates


def test_adding_an_intermediate_already_held_changes_nothing(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    issuing = _pem_ders(dev_pki.bidder_issuing.cert)[0]
    version = imported.version()

    applied = imported.add_intermediate(CA, issuing, "sync-job", Source.SYNC)

    assert not applied.changed
    assert imported.version() == version


def test_intermediate_not_signed_by_the_ca_is_refused_with_INTERMEDIATE_UNCHAINED(
    imported: DbTrustStore, dev_pki: DevPki, pki_now: datetime
) -> None:
    # Names the dev root as issuer, but the rogue CA's key signed it.
    root = _cert(dev_pki.bidder_root.cert)
    forged = ca_certificate(
        _name("Forged Issuing CA"), root.subject, _key(dev_pki.rogue_ca.key), pki_now
    )

    with pytest.raises(trust_errors.IntermediateUnchained) as refused:
        imported.add_intermediate(CA, forged, "sync-job", Source.SYNC)

    assert refused.value.code == "INTERMEDIATE_UNCHAINED"
    assert forged not in imported.snapshot().material(CA).intermediates


def test_intermediate_of_another_ca_is_refused_with_INTERMEDIATE_UNCHAINED(
    imported: DbTrustStore, dev_pki: DevPki, pki_now: datetime
) -> None:
    rogue = _cert(dev_pki.rogue_ca.cert)
    other = ca_certificate(
        _name("Rogue Issuing CA"), rogue.subject, _key(dev_pki.rogue_ca.key), pki_now
    )

    with pytest.raises(trust_errors.IntermediateUnchained):
        imported.add_intermediate(CA, other, "authority", Source.AUTHORITY_PUSH)


def test_intermediate_chained_to_a_pending_anchor_is_refused(
    imported: DbTrustStore, dev_pki: DevPki, pki_now: datetime
) -> None:
    rogue = _cert(dev_pki.rogue_ca.cert)
    imported.propose_anchor(CA, _der(rogue), "alice")
    child = ca_certificate(
        _name("Rogue Issuing CA"), rogue.subject, _key(dev_pki.rogue_ca.key), pki_now
    )

    with pytest.raises(trust_errors.IntermediateUnchained):
        imported.add_intermediate(CA, child, "sync-job", Source.SYNC)


def test_a_bidder_certificate_is_refused_as_trust_material(
    imported: DbTrustStore, signer_certs: Callable[[str], SignerCerts]
) -> None:
    leaf, _ = signer_certs("alpha")

    with pytest.raises(trust_errors.TrustChangeRefused, match="not a CA certificate"):
        imported.add_intermediate(CA, leaf, "sync-job", Source.SYNC)
    with pytest.raises(trust_errors.TrustChangeRefused, match="not a CA certificate"):
        imported.propose_anchor(CA, leaf, "alice")


def test_garbage_is_refused_as_CERTIFICATE_MALFORMED(imported: DbTrustStore) -> None:
    with pytest.raises(errors.CertificateMalformed):
        imported.add_intermediate(CA, b"\x30\x03\x02\x01\x01", "sync-job", Source.SYNC)
    with pytest.raises(errors.CertificateMalformed):
        imported.add_crl(CA, b"not a crl", "sync-job", Source.SYNC)


# --- CRLs -----------------------------------------------------------------------------


def test_newer_crl_is_accepted_and_the_snapshot_uses_it_instead_of_the_old_one(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    issuing = _cert(dev_pki.bidder_issuing.cert)
    old = dev_pki.bidder_issuing_crl.read_bytes()
    new = crl(
        issuing,
        _key(dev_pki.bidder_issuing.key),
        _issuing_crl_number(dev_pki) + 1,
        _held_issuing_crl_time(dev_pki) + timedelta(minutes=10),
    )

    applied = imported.add_crl(CA, new, "sync-job", Source.SYNC)

    assert applied.changed
    assert applied.record.crl_number == _issuing_crl_number(dev_pki) + 1
    crls = imported.snapshot().material(CA).crls
    assert new in crls
    assert old not in crls
    assert dev_pki.bidder_root_crl.read_bytes() in crls  # the other issuer's CRL stays


def test_a_pushed_crl_revoking_a_bidder_takes_effect_in_the_next_snapshot(
    imported: DbTrustStore,
    dev_pki: DevPki,
    signer_certs: Callable[[str], SignerCerts],
    pki_now: datetime,
) -> None:
    leaf, chain = signer_certs("alpha")
    serial = x509.load_der_x509_certificate(leaf).serial_number
    revoking = crl(
        _cert(dev_pki.bidder_issuing.cert),
        _key(dev_pki.bidder_issuing.key),
        _issuing_crl_number(dev_pki) + 1,
        pki_now - timedelta(minutes=30),
        revoked=(serial,),
    )

    imported.add_crl(CA, revoking, "dev-bidder-ca-authority", Source.AUTHORITY_PUSH)

    with pytest.raises(errors.SignerRevoked):
        validate_signer(leaf, chain, pki_now, imported.snapshot(), [CA], SignerPolicy())


def test_crl_not_signed_by_the_ca_is_refused_with_CRL_SIGNATURE_INVALID(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    # Names the issuing CA, signed with the rogue CA's key.
    forged = crl(
        _cert(dev_pki.bidder_issuing.cert),
        _key(dev_pki.rogue_ca.key),
        _issuing_crl_number(dev_pki) + 1,
        _held_issuing_crl_time(dev_pki) + timedelta(minutes=10),
    )

    with pytest.raises(trust_errors.CrlSignatureInvalid) as refused:
        imported.add_crl(CA, forged, "sync-job", Source.SYNC)

    assert refused.value.code == "CRL_SIGNATURE_INVALID"
    assert forged not in imported.snapshot().material(CA).crls


def test_crl_of_an_issuer_outside_the_ca_is_refused_with_CRL_SIGNATURE_INVALID(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    rogue_crl = crl(_cert(dev_pki.rogue_ca.cert), _key(dev_pki.rogue_ca.key), 1, datetime.now(UTC))

    with pytest.raises(trust_errors.CrlSignatureInvalid):
        imported.add_crl(CA, rogue_crl, "sync-job", Source.SYNC)


def test_older_crl_is_refused_with_CRL_NOT_NEWER(imported: DbTrustStore, dev_pki: DevPki) -> None:
    older = crl(
        _cert(dev_pki.bidder_issuing.cert),
        _key(dev_pki.bidder_issuing.key),
        _issuing_crl_number(dev_pki) - 1,
        _held_issuing_crl_time(dev_pki) - timedelta(days=1),
    )

    with pytest.raises(trust_errors.CrlNotNewer) as refused:
        imported.add_crl(CA, older, "sync-job", Source.SYNC)

    assert refused.value.code == "CRL_NOT_NEWER"
    assert dev_pki.bidder_issuing_crl.read_bytes() in imported.snapshot().material(CA).crls


def test_a_crl_without_an_authority_key_identifier_is_refused(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    # Without the AKI (mandatory in RFC 5280) the CRL could neither be told apart from a
    # second issuer nor be matched to its issuer at validation.
    issuer = _cert(dev_pki.bidder_issuing.cert)
    this_update = _held_issuing_crl_time(dev_pki) - timedelta(days=1)
    key = _key(dev_pki.bidder_issuing.key)
    older = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(days=7))
        .add_extension(x509.CRLNumber(_issuing_crl_number(dev_pki) - 1), critical=False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
        .public_bytes(serialization.Encoding.DER)
    )

    with pytest.raises(trust_errors.TrustChangeRefused, match="authorityKeyIdentifier"):
        imported.add_crl(CA, older, "sync-job", Source.SYNC)
    assert dev_pki.bidder_issuing_crl.read_bytes() in imported.snapshot().material(CA).crls


def test_crl_with_the_same_number_but_later_this_update_is_not_newer(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    same_number = crl(
        _cert(dev_pki.bidder_issuing.cert),
        _key(dev_pki.bidder_issuing.key),
        _issuing_crl_number(dev_pki),
        _held_issuing_crl_time(dev_pki) + timedelta(minutes=10),
    )

    with pytest.raises(trust_errors.CrlNotNewer):
        imported.add_crl(CA, same_number, "sync-job", Source.SYNC)


def test_the_identical_crl_again_changes_nothing(imported: DbTrustStore, dev_pki: DevPki) -> None:
    version = imported.version()

    applied = imported.add_crl(CA, dev_pki.bidder_issuing_crl.read_bytes(), "sync-job", Source.SYNC)

    assert not applied.changed
    assert imported.version() == version


# --- anchors: two operators -----------------------------------------------------------


def test_a_proposed_anchor_is_pending_and_not_trusted(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    rogue = _pem_ders(dev_pki.rogue_ca.cert)[0]

    record = imported.propose_anchor("second-ca", rogue, "alice", display_name="Second CA")

    assert record.status == CertStatus.PENDING
    assert imported.snapshot().ca_ids() == (CA,)


def test_anchor_approved_by_its_proposer_is_refused_with_ANCHOR_APPROVAL_SAME_OPERATOR(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    record = imported.propose_anchor("second-ca", _pem_ders(dev_pki.rogue_ca.cert)[0], "alice")

    with pytest.raises(trust_errors.AnchorApprovalSameOperator) as refused:
        imported.approve_anchor(record.sha256, "alice")

    assert refused.value.code == "ANCHOR_APPROVAL_SAME_OPERATOR"
    assert refused.value.grpc_status == "PERMISSION_DENIED"
    assert "second-ca" not in imported.snapshot().cas


def test_anchor_approved_by_a_second_operator_becomes_trusted(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    rogue = _pem_ders(dev_pki.rogue_ca.cert)[0]
    record = imported.propose_anchor("second-ca", rogue, "alice")

    approved = imported.approve_anchor(record.sha256.upper(), "bob")

    assert (approved.status, approved.added_by, approved.approved_by) == (
        CertStatus.ACTIVE,
        "alice",
        "bob",
    )
    assert imported.snapshot().material("second-ca").anchors == (rogue,)


def test_approving_an_unknown_or_already_active_anchor_is_refused(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    root = _pem_ders(dev_pki.bidder_root.cert)[0]
    with pytest.raises(trust_errors.TrustCertificateNotFound):
        imported.approve_anchor("00" * 32, "bob")
    with pytest.raises(trust_errors.TrustCertificateNotFound):
        imported.approve_anchor(_sha(root), "bob")


def test_proposing_an_anchor_already_held_is_refused(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    with pytest.raises(trust_errors.TrustChangeRefused, match="already active"):
        imported.propose_anchor(CA, _pem_ders(dev_pki.bidder_root.cert)[0], "alice")


def test_an_invalid_ca_id_is_refused(imported: DbTrustStore, dev_pki: DevPki) -> None:
    with pytest.raises(trust_errors.TrustChangeRefused, match="invalid CA id"):
        imported.propose_anchor("Not Valid!", _pem_ders(dev_pki.rogue_ca.cert)[0], "alice")


# --- removal --------------------------------------------------------------------------


def test_a_removed_ca_disappears_from_the_snapshot(imported: DbTrustStore) -> None:
    imported.remove_ca(CA, "carol")

    assert imported.snapshot().ca_ids() == ()
    assert imported.list_cas() == ()
    (removed,) = imported.list_cas(include_removed=True)
    assert removed.certificates == ()


def test_changes_to_a_removed_or_unknown_ca_are_refused_with_CA_NOT_FOUND(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    imported.remove_ca(CA, "carol")
    issuing_crl = dev_pki.bidder_issuing_crl.read_bytes()

    with pytest.raises(trust_errors.CaNotFound):
        imported.add_crl(CA, issuing_crl, "sync-job", Source.SYNC)
    with pytest.raises(trust_errors.CaNotFound) as refused:
        imported.remove_ca("no-such-ca", "carol")
    assert refused.value.grpc_status == "NOT_FOUND"


def test_a_removed_ca_comes_back_only_through_a_two_operator_anchor(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    root = _pem_ders(dev_pki.bidder_root.cert)[0]
    imported.remove_ca(CA, "carol")

    with pytest.raises(trust_errors.TrustChangeRefused, match="was removed"):
        imported.import_directory(dev_pki.trust_dir, "carol")
    record = imported.propose_anchor(CA, root, "carol")
    assert imported.snapshot().ca_ids() == ()
    imported.approve_anchor(record.sha256, "dave")

    material = imported.snapshot().material(CA)
    assert (material.anchors, material.intermediates) == ((root,), ())


def test_a_removed_intermediate_disappears_from_the_snapshot(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    issuing = _pem_ders(dev_pki.bidder_issuing.cert)[0]

    removed = imported.remove_certificate(_sha(issuing), "carol")

    assert removed.status == CertStatus.REMOVED
    assert imported.snapshot().material(CA).intermediates == ()


def test_a_ca_whose_only_anchor_is_removed_disappears_from_the_snapshot(
    imported: DbTrustStore, dev_pki: DevPki
) -> None:
    imported.remove_certificate(_sha(_pem_ders(dev_pki.bidder_root.cert)[0]), "carol", ca_id=CA)

    assert imported.snapshot().ca_ids() == ()


# --- the trust-change log and the audit log -------------------------------------------


def _audited_store(engine: Engine) -> DbTrustStore:
    audit = AuditLog()

    def on_change(session: Session, event: str, fields: Mapping[str, FieldValue]) -> None:
        audit.append(session, datetime.now(UTC), event, None, None, fields)

    return DbTrustStore(engine, on_change=on_change)


def _audit_events(engine: Engine) -> list[str]:
    with unit_of_work(engine, read_only=True) as session:
        return list(session.scalars(select(AuditEntry.event).order_by(AuditEntry.seq)))


def test_every_change_is_logged_and_appended_to_the_audit_log_in_its_transaction(
    engine: Engine, dev_pki: DevPki
) -> None:
    store = _audited_store(engine)
    store.import_directory(dev_pki.trust_dir, "alice")
    record = store.propose_anchor("second-ca", _pem_ders(dev_pki.rogue_ca.cert)[0], "alice")
    store.approve_anchor(record.sha256, "bob")

    events = [c.event for c in store.changes()]
    assert events == [
        "trust.ca_added",
        "trust.anchor_imported",
        "trust.intermediate_added",
        "trust.crl_added",
        "trust.crl_added",
        "trust.ca_added",
        "trust.anchor_proposed",
        "trust.anchor_approved",
    ]
    assert all(c.audited for c in store.changes())
    assert _audit_events(engine) == events
    approved = store.changes()[-1]
    assert (approved.actor, approved.fields["proposed_by"]) == ("bob", "alice")
    with unit_of_work(engine, read_only=True) as session:
        assert AuditLog().verify_chain(session) == len(events)


def test_a_refused_change_leaves_no_log_entry_and_no_audit_entry(
    engine: Engine, dev_pki: DevPki
) -> None:
    store = _audited_store(engine)
    record = store.propose_anchor("second-ca", _pem_ders(dev_pki.rogue_ca.cert)[0], "alice")
    before = (len(store.changes()), len(_audit_events(engine)))

    with pytest.raises(trust_errors.AnchorApprovalSameOperator):
        store.approve_anchor(record.sha256, "alice")

    assert (len(store.changes()), len(_audit_events(engine))) == before


def test_changes_made_without_the_audit_callback_are_forwarded_later_once(
    engine: Engine, dev_pki: DevPki
) -> None:
    DbTrustStore(engine).import_directory(dev_pki.trust_dir, "alice")  # e.g. the CLI
    assert _audit_events(engine) == []
    service_side = _audited_store(engine)

    forwarded = service_side.forward_unaudited()

    assert forwarded == 5
    assert service_side.forward_unaudited() == 0
    assert len(_audit_events(engine)) == 5
    assert all(c.audited for c in service_side.changes())


def test_the_change_log_keeps_who_did_what_to_which_ca(imported: DbTrustStore) -> None:
    imported.remove_ca(CA, "carol")

    last = imported.changes()[-1]
    assert (last.event, last.actor, last.ca_id) == ("trust.ca_removed", "carol", CA)
    assert last.fields == {"certificates_removed": 2}
    assert not last.audited


def test_an_empty_actor_is_refused(imported: DbTrustStore) -> None:
    with pytest.raises(trust_errors.TrustChangeRefused, match="name who makes the change"):
        imported.remove_ca(CA, "  ")


# --- refresh without restart ------------------------------------------------------------


def test_snapshots_pick_up_a_change_after_the_check_interval(
    imported: DbTrustStore, engine: Engine
) -> None:
    clock = [100.0]
    snapshots = TrustSnapshots(imported, check_interval=5.0, monotonic=lambda: clock[0])
    first = snapshots.current()
    DbTrustStore(engine).remove_ca(CA, "carol")  # another process, e.g. the CLI

    clock[0] += 4.9
    assert snapshots.current() is first
    clock[0] += 0.2
    assert snapshots.current().ca_ids() == ()


def test_snapshots_are_not_rebuilt_when_nothing_changed(imported: DbTrustStore) -> None:
    clock = [0.0]
    snapshots = TrustSnapshots(imported, check_interval=1.0, monotonic=lambda: clock[0])
    first = snapshots.current()

    clock[0] += 10
    assert snapshots.current() is first


# --- error classes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (trust_errors.TrustChangeRefused, "TRUST_CHANGE_REFUSED", "FAILED_PRECONDITION"),
        (
            trust_errors.AnchorApprovalSameOperator,
            "ANCHOR_APPROVAL_SAME_OPERATOR",
            "PERMISSION_DENIED",
        ),
        (trust_errors.CrlNotNewer, "CRL_NOT_NEWER", "FAILED_PRECONDITION"),
        (trust_errors.CrlSignatureInvalid, "CRL_SIGNATURE_INVALID", "INVALID_ARGUMENT"),
        (trust_errors.IntermediateUnchained, "INTERMEDIATE_UNCHAINED", "FAILED_PRECONDITION"),
        (trust_errors.CaNotFound, "CA_NOT_FOUND", "NOT_FOUND"),
        (trust_errors.TrustCertificateNotFound, "TRUST_CERTIFICATE_NOT_FOUND", "NOT_FOUND"),
        (trust_errors.TrustDatabaseUnavailable, "TRUST_DATABASE_UNAVAILABLE", "UNAVAILABLE"),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(v),
)
def test_trust_errors_have_their_code_and_grpc_status_and_are_ca_bridge_errors(
    cls: type[errors.CaBridgeError], code: str, status: str
) -> None:
    assert (cls.code, cls.grpc_status) == (code, status)
    assert cls in errors.all_error_classes()
    codes = [c.code for c in errors.all_error_classes()]
    assert codes.count(code) == 1


def test_trust_tables_live_in_their_own_metadata(engine: Engine) -> None:
    assert not set(TrustBase.metadata.tables) & set(Base.metadata.tables)
    with Session(engine) as session:
        assert (
            session.scalar(select(func.count()).select_from(TrustBase.metadata.tables["trust_cas"]))
            == 0
        )


def _sha(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()
