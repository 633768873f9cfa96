"""A tender's revocation policy: with no revocation information to be had for the
signer's chain, "require" refuses (the bidder may retry) and "soft-fail" accepts with
the warning recorded in the bid's validation record."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sealed_bid.client import ServiceError
from sealed_bid.crypto.certs import issue_certificate, signing_profile
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import seal_bid
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import TenderId
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.server, pytest.mark.token]

CA_ID = "no-crl-ca"


@pytest.fixture(scope="module")
def bidder(service: Service, tmp_path_factory: pytest.TempPathFactory) -> SoftwareSigner:
    """A CA that publishes no CRL and names no responder, trusted by the platform."""
    now = service.clock.now()
    root_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No-CRL Root CA")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    root_der = root.public_bytes(serialization.Encoding.DER)
    trust = tmp_path_factory.mktemp("trust")
    (trust / CA_ID / "anchors").mkdir(parents=True)
    (trust / CA_ID / "anchors" / "root.pem").write_bytes(
        root.public_bytes(serialization.Encoding.PEM)
    )
    service.app.trust_store.import_directory(trust, "Operator One")
    own = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Eta Paving Co., Ltd.")])
    cert = issue_certificate(
        SoftwareSigner(root_key, root_der), subject, own.public_key(),
        now - timedelta(days=1), now + timedelta(days=365), None, signing_profile(),
    )  # fmt: skip
    return SoftwareSigner(own, cert)


def _tender(service: Service, policy: str) -> pb.Tender:
    now = service.clock.now()
    tender_id = f"REV-{policy}-{now.strftime('%H%M%S%f')}"
    return service.operator.create_tender(
        tender_id, "Paving", now + timedelta(hours=1), now + timedelta(hours=2),
        [CA_ID], 0, False, policy,
    )  # fmt: skip


def _submit(service: Service, tender: pb.Tender, signer: SoftwareSigner, work: Path) -> str:
    form = BidForm(TenderId(tender.tender_id), "Eta Paving", Decimal("1.00"), "CNY", 30, {})
    package = work / "package.zip"
    with package.open("wb") as f:
        build_package(form, {}, f)
    sealed = seal_bid(package, signer, tender.tender_certificate, work,
                      signing_time=service.clock.now())  # fmt: skip
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt.content.bid_id


def test_require_refuses_a_signer_whose_revocation_status_cannot_be_had(
    service: Service, bidder: SoftwareSigner, tmp_path: Path
) -> None:
    tender = _tender(service, "require")
    assert tender.revocation_policy == "require"
    with pytest.raises(ServiceError) as refused:
        _submit(service, tender, bidder, tmp_path)
    assert (refused.value.code, refused.value.status) == ("REVOCATION_UNAVAILABLE", "UNAVAILABLE")


def test_soft_fail_accepts_and_records_the_warning(
    service: Service, bidder: SoftwareSigner, tmp_path: Path
) -> None:
    tender = _tender(service, "soft-fail")
    assert tender.revocation_policy == "soft-fail"
    bid_id = _submit(service, tender, bidder, tmp_path)
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        assert Repository(session).get_bid(bid_id).validation_json is None  # sealed
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))
    try:
        service.operator.open_tender(tender.tender_id)  # unseals it (ADR 0016)
    finally:
        service.clock.set(start)
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        stored = Repository(session).get_bid(bid_id).validation_json
    assert stored is not None
    record = json.loads(stored)
    assert record["policy"]["revocation"] == "soft-fail"
    assert record["warnings"], "the missing revocation information is recorded"
    assert record["evidence"] == []


def test_an_unknown_revocation_policy_is_refused_with_INVALID_TENDER(service: Service) -> None:
    with pytest.raises(ServiceError) as refused:
        _tender(service, "maybe")
    assert refused.value.code == "INVALID_TENDER"
