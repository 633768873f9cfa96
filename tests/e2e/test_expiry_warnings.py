"""A bid whose signer certificate expires before the opening is reported (by bid id, not
by name) so the bidder can re-sign, and it still opens: it was valid when submitted."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from sealed_bid.crypto.envelope import seal_envelope
from sealed_bid.crypto.signed_data import sign_attached, sign_detached
from sealed_bid.service.expiry import expiring_signers
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import CertificateExpiry
from sealed_bid.storage.repository import Repository
from tests.cli.conftest import cli_env, run_cli
from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import new_dev_bidder

pytestmark = [pytest.mark.server, pytest.mark.token]


def test_a_signer_expiring_before_the_opening_is_reported_and_the_bid_still_opens(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)  # deadline in 1 h, opening 30 min later
    theta = new_dev_bidder(service, "Theta Lighting Ltd", lifetime=timedelta(hours=1, minutes=10))
    seal_for(service, tender, "alpha", tmp_path)  # writes tmp_path/package.zip
    package = (tmp_path / "package.zip").read_bytes()
    # theta signs both the package and the envelope (inner signer = outer signer).
    envelope = io.BytesIO()
    inner = sign_attached(theta, package, service.clock.now())
    seal_envelope(io.BytesIO(inner), envelope, [tender.tender_certificate], "sha1")
    path = tmp_path / "theta.p7m"
    path.write_bytes(envelope.getvalue())
    digest = hashlib.sha256(envelope.getvalue()).digest()
    signature = sign_detached(theta, digest, service.clock.now())
    bid_id = service.bidder.submit_bid(tender.tender_id, path, signature).receipt.content.bid_id

    ctx = service.app.context
    warnings = [w for w in expiring_signers(ctx.engine) if w.bid_id == bid_id]
    assert len(warnings) == 1 and warnings[0].end_entity
    # Decided at submission; the row keeps the answer, not the certificate's notAfter.
    with unit_of_work(ctx.engine, read_only=True) as session:
        stored = Repository(session).get_bid(bid_id).expires_before_opening
    assert stored == CertificateExpiry.SIGNER
    not_after = x509.load_der_x509_certificate(theta.certificate_der).not_valid_after_utc
    assert "Theta" not in warnings[0].line()
    assert not_after.isoformat() not in warnings[0].line()
    alpha = seal_for(service, tender, "alpha", tmp_path / "alpha")
    alpha_id = service.bidder.submit_bid(
        tender.tender_id, alpha.envelope_path, alpha.outer_signature_der
    ).receipt.content.bid_id
    assert not [w for w in expiring_signers(ctx.engine) if w.bid_id == alpha_id]

    report = run_cli(
        "ca", "sync", "--once", "--state-dir", service.settings.state_dir,
        env=cli_env(SEALED_BID_PKCS11_MODULE="/nonexistent/libpkcs11-must-not-load.so"),
    )  # fmt: skip
    assert f"bid {bid_id}: signer certificate expires" in report.stdout, report.stdout

    service.clock.advance(timedelta(hours=2))  # the certificate has expired by now
    try:
        record = json.loads(service.operator.open_tender(tender.tender_id).record_json)
    finally:
        service.clock.advance(-timedelta(hours=2))
    [row] = [b for b in record["bids"] if b["bid_id"] == bid_id]
    assert row["status"] == "OPENED"
