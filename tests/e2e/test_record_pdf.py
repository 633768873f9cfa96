"""The record of a real opening, as the signed PDF the service publishes: PAdES-signed by
the platform receipt key on the token, with the TSA's signature and document time
stamps, carrying the exact record JSON; pyhanko's validator accepts it offline."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealed_bid.records.pades import validate_record_pdf
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def test_the_published_pdf_validates_and_carries_the_record(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service, deadline_in=timedelta(minutes=5))
    sealed = seal_for(service, tender, "delta", tmp_path)
    service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, sealed.outer_signature_der)
    service.clock.set(tender.opening_time.ToDatetime().replace(tzinfo=service.clock.now().tzinfo))
    service.operator.open_tender(tender.tender_id)
    published = service.bidder.get_record(tender.tender_id)  # the public port
    assert published.record_pdf.startswith(b"%PDF-")
    on_disk = service.settings.records_dir / f"{tender.tender_id}.pdf"
    assert on_disk.read_bytes() == published.record_pdf

    platform_root = _der(service.pki.platform_root.cert)
    tsa_root = _der(service.settings.pki_path / "tsa" / "tsa-root.pem")
    result = validate_record_pdf(
        published.record_pdf, trust_roots_der=[platform_root], tsa_roots_der=[tsa_root]
    )
    assert result.ok, result.problems
    assert (result.intact, result.valid, result.trusted, result.pades) == (True, True, True, True)
    assert result.signer_subject is not None and "platform-receipt" in result.signer_subject
    assert result.signature_timestamp is not None and result.signature_timestamp.ok
    assert result.document_timestamp is not None and result.document_timestamp.ok
    assert result.record_json == published.record_json
    assert hashlib.sha256(result.record_json.encode()).hexdigest() == published.record_sha256

    # A root that did not issue the platform's keys vouches for nothing.
    other = validate_record_pdf(
        published.record_pdf, trust_roots_der=[tsa_root], tsa_roots_der=[tsa_root]
    )
    assert not other.trusted and not other.ok
