"""The push path for CA authorities: on the authority port, with mutual TLS, a CA's
authority publishes its own CA's CRLs and intermediates — never another CA's, never an
anchor. Every accepted change is checked by the trust store, is in the signed audit log,
and applies to the next submission without a restart."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.trust_errors import CaNotFound
from sealed_bid.client import ServiceError
from sealed_bid.crypto.certs import (
    ca_profile,
    issue_certificate,
    signing_profile,
    tls_client_profile,
)
from sealed_bid.crypto.signed_data import sign_detached
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.devpki import BIDDER_CA_ID, KeyPairFiles, PrivateKey
from sealed_bid.storage.db import unit_of_work
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token]

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


# --- Playing the CAs: their keys are at hand -------------------------------------------
@dataclass(frozen=True)
class _Ca:
    key: PrivateKey
    cert_der: bytes

    @property
    def signer(self) -> SoftwareSigner:
        return SoftwareSigner(self.key, self.cert_der)


def _ca(files: KeyPairFiles) -> _Ca:
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return _Ca(key, cert.public_bytes(DER))


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sealed Bid Push Tests")]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _self_signed_ca(common_name: str, now: datetime) -> _Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Ca(key, cert.public_bytes(DER))


def _sub_ca(issuer: _Ca, common_name: str, now: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return issue_certificate(
        issuer.signer,
        _name(common_name),
        key.public_key(),
        now - timedelta(hours=1),
        now + timedelta(days=365),
        None,
        ca_profile(path_length=0),
    )


def _authority_credentials(issuer: _Ca, now: datetime) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of an authority client certificate under ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_certificate(
        issuer.signer,
        _name("Authority", "ca-authority"),
        key.public_key(),
        now - timedelta(hours=1),
        now + timedelta(days=30),
        None,
        tls_client_profile(),
    )
    key_pem = key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, x509.load_der_x509_certificate(cert).public_bytes(PEM)


def _crl(
    issuer: _Ca,
    number: int,
    this_update: datetime,
    revoked: list[x509.RevokedCertificate],
) -> bytes:
    issuer_cert = x509.load_der_x509_certificate(issuer.cert_der)
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        # RFC 5280 5.2.1: a CRL names its issuer's key; the store tells issuers apart by it.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(DER)


def _next_issuing_crl(service: Service, *also_revoked: int) -> bytes:
    """The issuing CA's next CRL: the entries of the CRL the service holds, plus
    ``also_revoked``, with the next number — what the CA would publish after revoking."""
    issuing = _ca(service.pki.bidder_issuing)
    held = max(
        (crl for crl in map(x509.load_der_x509_crl, _snapshot_crls(service)) if _of(crl, issuing)),
        key=_crl_number,
    )
    number = _crl_number(held)
    this_update = max(service.clock.now() - timedelta(minutes=1), held.last_update_utc)
    revoked = list(held) + [
        x509.RevokedCertificateBuilder()
        .serial_number(serial)
        .revocation_date(service.clock.now() - timedelta(seconds=30))
        .build()
        for serial in also_revoked
    ]
    return _crl(issuing, number + 1, this_update, revoked)


def _of(crl: x509.CertificateRevocationList, ca: _Ca) -> bool:
    """Whether ``ca`` issued ``crl``: its name and its key (authority key identifier)."""
    cert = x509.load_der_x509_certificate(ca.cert_der)
    try:
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return False
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return crl.issuer == cert.subject and aki.key_identifier == ski.digest


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _snapshot_crls(service: Service) -> tuple[bytes, ...]:
    return service.app.context.trust.refresh().material(BIDDER_CA_ID).crls


def _audited(service: Service, event: str) -> list[dict[str, object]]:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        entries = service.app.context.audit.entries(session, limit=100_000)
        return [json.loads(e.fields_json) for e in entries if e.event == event]


def _authority_subject(service: Service) -> str:
    cert = x509.load_pem_x509_certificate(service.pki.bidder_authority.cert.read_bytes())
    return cert.subject.rfc4514_string()


def _refused(call: object) -> ServiceError:
    assert callable(call)
    with pytest.raises(ServiceError) as refused:
        call()
    return refused.value


# --- Revocation pushed by the CA's authority -----------------------------------------
def test_a_crl_pushed_by_the_authority_refuses_the_next_submission_of_the_revoked_bidder(
    service: Service, tmp_path: Path
) -> None:
    now = service.clock.now()
    signer_key = ec.generate_private_key(ec.SECP256R1())
    cert_der = issue_certificate(
        _ca(service.pki.bidder_issuing).signer,
        _name("Zeta Tunnels Co., Ltd."),
        signer_key.public_key(),
        now - timedelta(days=1),
        now + timedelta(days=365),
        None,
        signing_profile(),
    )
    zeta = SoftwareSigner(signer_key, cert_der)
    tender = new_tender(service)

    def submit(workdir: Path) -> None:
        sealed = seal_for(service, tender, "alpha", workdir)  # alpha's package; zeta signs
        envelope = sealed.envelope_path.read_bytes()
        signature = sign_detached(zeta, hashlib.sha256(envelope).digest(), service.clock.now())
        service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, signature)

    submit(tmp_path / "before")  # accepted: not revoked yet

    serial = x509.load_der_x509_certificate(cert_der).serial_number
    crl = _next_issuing_crl(service, serial)
    published = service.authority.publish_crl(BIDDER_CA_ID, crl)

    assert published.changed
    assert published.sha256 == hashlib.sha256(crl).hexdigest()
    assert published.ca_id == BIDDER_CA_ID
    assert "CN=Dev Bidder Issuing CA" in published.subject
    service.clock.advance(timedelta(seconds=10))  # a newer signingTime than the first bid
    try:
        refused = _refused(lambda: submit(tmp_path / "after"))
    finally:
        service.clock.advance(-timedelta(seconds=10))
    assert (refused.code, refused.status) == ("SIGNER_REVOKED", "PERMISSION_DENIED")


def test_the_same_crl_pushed_again_changes_nothing(service: Service) -> None:
    crl = _next_issuing_crl(service)
    first = service.authority.publish_crl(BIDDER_CA_ID, crl)
    version = service.app.trust_store.version()

    again = service.authority.publish_crl(BIDDER_CA_ID, crl)

    assert first.changed and not again.changed
    assert again.sha256 == first.sha256
    assert service.app.trust_store.version() == version


def test_an_older_crl_is_refused_with_CRL_NOT_NEWER(service: Service) -> None:
    service.authority.publish_crl(BIDDER_CA_ID, _next_issuing_crl(service))
    older = service.pki.bidder_issuing_crl.read_bytes()  # what `sealed-bid init` installed

    refused = _refused(lambda: service.authority.publish_crl(BIDDER_CA_ID, older))

    assert (refused.code, refused.status) == ("CRL_NOT_NEWER", "FAILED_PRECONDITION")


def test_a_crl_signed_by_another_ca_is_refused_with_CRL_SIGNATURE_INVALID(
    service: Service,
) -> None:
    stranger = _self_signed_ca("Stranger CA", service.clock.now())
    crl = _crl(stranger, 1, service.clock.now() - timedelta(minutes=1), [])

    refused = _refused(lambda: service.authority.publish_crl(BIDDER_CA_ID, crl))

    assert (refused.code, refused.status) == ("CRL_SIGNATURE_INVALID", "INVALID_ARGUMENT")


def test_an_authority_cannot_publish_for_another_ca_id(service: Service) -> None:
    crl = _next_issuing_crl(service)
    version = service.app.trust_store.version()

    refused = _refused(lambda: service.authority.publish_crl("another-ca", crl))

    assert (refused.code, refused.status) == ("AUTHORITY_WRONG_CA", "PERMISSION_DENIED")
    assert service.app.trust_store.version() == version


# --- Intermediates ---------------------------------------------------------------------
def test_a_new_intermediate_issued_by_the_ca_root_is_accepted(service: Service) -> None:
    der = _sub_ca(_ca(service.pki.bidder_root), "Dev Bidder Issuing CA 2", service.clock.now())

    published = service.authority.publish_intermediate(BIDDER_CA_ID, der)
    again = service.authority.publish_intermediate(BIDDER_CA_ID, der)

    assert published.changed and not again.changed
    assert published.sha256 == hashlib.sha256(der).hexdigest()
    assert "CN=Dev Bidder Issuing CA 2" in published.subject
    assert der in service.app.context.trust.current().material(BIDDER_CA_ID).intermediates


def test_an_intermediate_that_does_not_chain_to_the_ca_is_refused(service: Service) -> None:
    rogue = _ca(service.pki.rogue_ca)
    der = _sub_ca(rogue, "Rogue Issuing CA", service.clock.now())

    refused = _refused(lambda: service.authority.publish_intermediate(BIDDER_CA_ID, der))

    assert (refused.code, refused.status) == ("INTERMEDIATE_UNCHAINED", "FAILED_PRECONDITION")


def test_an_authority_cannot_add_an_anchor(service: Service) -> None:
    new_root = _self_signed_ca("Dev Bidder Root CA 2", service.clock.now())

    refused = _refused(
        lambda: service.authority.publish_intermediate(BIDDER_CA_ID, new_root.cert_der)
    )

    assert (refused.code, refused.status) == ("INTERMEDIATE_UNCHAINED", "FAILED_PRECONDITION")
    anchors = service.app.context.trust.current().material(BIDDER_CA_ID).anchors
    assert new_root.cert_der not in anchors


def test_every_accepted_push_is_in_the_audit_log_with_the_authority_as_actor(
    service: Service,
) -> None:
    crl = service.authority.publish_crl(BIDDER_CA_ID, _next_issuing_crl(service))
    der = _sub_ca(_ca(service.pki.bidder_root), "Dev Bidder Issuing CA 3", service.clock.now())
    cert = service.authority.publish_intermediate(BIDDER_CA_ID, der)

    subject = _authority_subject(service)
    for event, sha256 in (
        ("trust.crl_added", crl.sha256),
        ("trust.intermediate_added", cert.sha256),
    ):
        [entry] = [f for f in _audited(service, event) if f["sha256"] == sha256]
        assert entry["actor"] == subject
        assert entry["source"] == "authority-push"
        assert entry["ca_id"] == BIDDER_CA_ID


# --- Who may call ----------------------------------------------------------------------
@pytest.mark.parametrize("who", ["operator", "observer"])
def test_platform_client_certificates_are_refused_by_the_authority_port(
    service: Service, who: str
) -> None:
    files: KeyPairFiles = getattr(service.pki, who)
    with service.authority_client(files.key.read_bytes(), files.cert.read_bytes()) as client:
        refused = _refused(lambda: client.publish_crl(BIDDER_CA_ID, _next_issuing_crl(service)))

    assert refused.status == "UNAVAILABLE"  # the TLS handshake: not a bidder CA's certificate


def test_an_authority_of_a_ca_outside_the_trust_store_is_refused_at_tls(service: Service) -> None:
    files = service.pki.rogue_authority
    with service.authority_client(files.key.read_bytes(), files.cert.read_bytes()) as client:
        refused = _refused(lambda: client.publish_crl(BIDDER_CA_ID, _next_issuing_crl(service)))

    assert (refused.code, refused.status) == ("GRPC_UNAVAILABLE", "UNAVAILABLE")


def test_a_certificate_of_the_ca_without_the_authority_role_is_refused(service: Service) -> None:
    alpha = service.pki.bidders["alpha"]  # a bidder's signing certificate from the same CA
    issuing = service.pki.bidder_issuing.cert.read_bytes()
    chain = alpha.cert.read_bytes() + issuing
    version = service.app.trust_store.version()
    with service.authority_client(alpha.key.read_bytes(), chain) as client:
        refused = _refused(lambda: client.publish_crl(BIDDER_CA_ID, _next_issuing_crl(service)))

    assert (refused.code, refused.status) == ("AUTHORITY_REQUIRED", "PERMISSION_DENIED")
    assert service.app.trust_store.version() == version


# --- A CA approved or removed by operators, without a restart --------------------------
@pytest.fixture
def second_ca(service: Service) -> Iterator[tuple[str, _Ca]]:
    """A CA the operators add while the service runs (two operators, as the CLI does);
    removed again afterwards."""
    ca_id = "push-test-ca"
    root = _self_signed_ca("Push Test Root CA", service.clock.now())
    store = DbTrustStore(service.app.context.engine)  # as `sealed-bid ca add-anchor` does
    store.propose_anchor(ca_id, root.cert_der, "alice")
    yield ca_id, root
    with contextlib.suppress(CaNotFound):  # the test removed it already
        store.remove_ca(ca_id, "alice")


def test_an_anchor_approved_by_operators_admits_its_authority_without_restart(
    service: Service, second_ca: tuple[str, _Ca]
) -> None:
    ca_id, root = second_ca
    key_pem, cert_pem = _authority_credentials(root, service.clock.now())
    crl = _crl(root, 1, service.clock.now() - timedelta(minutes=1), [])
    with service.authority_client(key_pem, cert_pem) as pending:
        refused = _refused(lambda: pending.publish_crl(ca_id, crl))
    assert refused.status == "UNAVAILABLE"  # the anchor is only proposed

    store = DbTrustStore(service.app.context.engine)
    store.approve_anchor(hashlib.sha256(root.cert_der).hexdigest(), "bob", ca_id=ca_id)
    # (trust_refresh_seconds is 0 in these tests: the next connection sees the change)

    with service.authority_client(key_pem, cert_pem) as authority:
        published = authority.publish_crl(ca_id, crl)
        wrong = _refused(lambda: authority.publish_crl(BIDDER_CA_ID, _next_issuing_crl(service)))
        assert published.changed
        assert (wrong.code, wrong.status) == ("AUTHORITY_WRONG_CA", "PERMISSION_DENIED")

        store.remove_ca(ca_id, "alice")
        # The open connection passed TLS before the removal; the servicer re-checks.
        gone = _refused(lambda: authority.publish_crl(ca_id, crl))
        assert (gone.code, gone.status) == ("AUTHORITY_CA_UNDETERMINED", "PERMISSION_DENIED")

    with service.authority_client(key_pem, cert_pem) as after_removal:
        refused = _refused(lambda: after_removal.publish_crl(ca_id, crl))
    assert refused.status == "UNAVAILABLE"
