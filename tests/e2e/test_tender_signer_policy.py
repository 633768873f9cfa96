"""A tender may require an extended key usage of its bidders' signing certificates."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealed_bid.client import ServiceError
from sealed_bid.crypto.certs import CertProfile
from sealed_bid.crypto.signed_data import sign_detached
from tests.e2e.conftest import Service, seal_for
from tests.e2e.support import new_dev_bidder

pytestmark = [pytest.mark.server, pytest.mark.token]

EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string


def test_a_required_extended_key_usage_refuses_certificates_without_it(
    service: Service, tmp_path: Path
) -> None:
    now = service.clock.now()
    tender = service.operator.create_tender(
        f"EKU-{now:%H%M%S%f}", "Survey", now + timedelta(hours=1), now + timedelta(hours=2),
        ["dev-bidder-ca"], 0, False, "require", (), (EMAIL_PROTECTION,),
    )  # fmt: skip
    assert list(tender.extended_key_usages) == [EMAIL_PROTECTION]

    plain = seal_for(service, tender, "alpha", tmp_path / "alpha")  # no EKU at all
    with pytest.raises(ServiceError) as refused:
        service.bidder.submit_bid(tender.tender_id, plain.envelope_path, plain.outer_signature_der)
    assert (refused.value.code, refused.value.status) == ("SIGNER_KEY_USAGE", "PERMISSION_DENIED")

    iota = new_dev_bidder(
        service,
        "Iota Survey Ltd",
        profile=CertProfile(
            key_usage=frozenset({"digital_signature", "non_repudiation"}),
            extended_key_usage=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
        ),
    )
    envelope = plain.envelope_path.read_bytes()
    signature = sign_detached(iota, hashlib.sha256(envelope).digest(), service.clock.now())
    accepted = service.bidder.submit_bid(tender.tender_id, plain.envelope_path, signature)
    assert accepted.receipt.content.envelope_sha256 == plain.sha256


def test_an_extended_key_usage_that_is_not_an_oid_is_INVALID_TENDER(service: Service) -> None:
    now = service.clock.now()
    with pytest.raises(ServiceError) as refused:
        service.operator.create_tender(
            f"EKU-BAD-{now:%H%M%S%f}", "Survey", now + timedelta(hours=1),
            now + timedelta(hours=2), ["dev-bidder-ca"], 0, False, "require", (), ("email",),
        )  # fmt: skip
    assert refused.value.code == "INVALID_TENDER"
