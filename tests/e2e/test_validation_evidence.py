"""The revocation evidence used at submission is stored with the bid (sealed to the
tender key until the opening, ADR 0016), so the decision re-validates offline after the
opening, and a revocation published after an honest submission does not void the bid."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.errors import SignerRevoked
from ca_bridge.store_models import Source
from ca_bridge.validation import SignerPolicy, validate_signer
from sealed_bid.crypto.signed_data import sign_detached
from sealed_bid.devpki import BIDDER_CA_ID
from sealed_bid.errors import BidSealed
from sealed_bid.service.revalidation import recheck_bid
from tests.cli.conftest import cli_env, run_cli
from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import dev_issuing_ca, new_dev_bidder

pytestmark = [pytest.mark.server, pytest.mark.token]


def _revoke(service: Service, serial: int) -> None:
    """The dev issuing CA publishes a newer CRL revoking ``serial`` (as `ca add-crl`)."""
    issuing, key = dev_issuing_ca(service)
    store = DbTrustStore(service.app.context.engine)
    [held_der] = [
        der
        for der in store.snapshot().material(BIDDER_CA_ID).crls
        if x509.load_der_x509_crl(der).issuer == issuing.subject
    ]
    held = x509.load_der_x509_crl(held_der)
    number = held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    now = service.clock.now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing.subject)
        .last_update(now - timedelta(seconds=5))
        .next_update(now + timedelta(days=7))
        .add_extension(x509.CRLNumber(number + 1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - timedelta(seconds=5))
            .build()
        )
    )
    for entry in held:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    assert store.add_crl(BIDDER_CA_ID, crl, "Operator One", Source.OPERATOR).changed


def _open(service: Service, tender_id: str) -> None:
    """Open the tender at its opening time, then put the clock back."""
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))
    try:
        service.operator.open_tender(tender_id)
    finally:
        service.clock.set(start)


def test_a_revocation_after_an_honest_submission_does_not_void_the_bid(
    service: Service, tmp_path: Path
) -> None:
    signer = new_dev_bidder(service, "Zeta Tunnels Co., Ltd.")
    tender = new_tender(service)
    sealed = seal_for(service, tender, "alpha", tmp_path)
    envelope = sealed.envelope_path.read_bytes()
    signature = sign_detached(signer, hashlib.sha256(envelope).digest(), service.clock.now())
    result = service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, signature)
    bid_id = result.receipt.content.bid_id
    ctx = service.app.context
    with pytest.raises(BidSealed, match="sealed to the tender key until the opening"):
        recheck_bid(ctx.engine, ctx.blobs, ctx.trust.current(), bid_id)

    _open(service, tender.tender_id)
    before = recheck_bid(ctx.engine, ctx.blobs, ctx.trust.current(), bid_id)
    assert before.stored["evidence"], "the CRLs used at submission are stored with the bid"
    assert all(ctx.blobs.exists(item["blob"]) for item in before.stored["evidence"])
    assert "Zeta" not in json.dumps(before.stored)

    # A minute later (the clock stays there: CRLs issued now must not be "from the
    # future" for later tests) the CA revokes the certificate.
    service.clock.advance(timedelta(minutes=1))
    _revoke(service, x509.load_der_x509_certificate(signer.certificate_der).serial_number)
    trust_now = ctx.trust.refresh()
    with pytest.raises(SignerRevoked):  # a fresh validation now refuses the signer
        validate_signer(
            signer.certificate_der, (), service.clock.now(), trust_now,
            [BIDDER_CA_ID], SignerPolicy(),
        )  # fmt: skip
    after = recheck_bid(ctx.engine, ctx.blobs, trust_now, bid_id)
    assert after.result.ca_id == BIDDER_CA_ID  # the stored decision still stands


def test_ca_show_validation_re_checks_a_bid_offline_without_naming_the_bidder(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "gamma", tmp_path)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )

    def show() -> subprocess.CompletedProcess[str]:
        return run_cli(
            "ca", "show-validation", result.receipt.content.bid_id,
            "--state-dir", service.settings.state_dir,
            env=cli_env(SEALED_BID_PKCS11_MODULE="/nonexistent/libpkcs11-must-not-load.so"),
        )  # fmt: skip

    company = service.pki.bidders["gamma"].company
    sealed_shown = show()
    assert sealed_shown.returncode == 2, sealed_shown.stdout
    assert "refused: BID_SEALED:" in sealed_shown.stderr
    assert company not in sealed_shown.stdout + sealed_shown.stderr

    _open(service, tender.tender_id)
    shown = show()
    assert shown.returncode == 0, shown.stderr
    assert "re-validated offline" in shown.stdout and ": valid" in shown.stdout
    assert company not in shown.stdout and company not in shown.stderr
