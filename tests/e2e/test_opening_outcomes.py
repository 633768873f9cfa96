"""At the opening every current bid gets a row: bids that fail to open get a precise
status and the others still open; a token failure stops the opening without a record."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from sealed_bid.cli.common import load_signer
from sealed_bid.client import ServiceError
from sealed_bid.crypto.envelope import inspect_envelope, seal_envelope
from sealed_bid.crypto.signed_data import sign_attached, sign_detached
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token]


def _submit_raw(service: Service, tender_id: str, envelope: bytes, bidder: str, out: Path) -> None:
    """Submit envelope bytes made by hand, with a valid outer signature by ``bidder``."""
    files = service.pki.bidders[bidder]
    signer = load_signer(files.key, files.cert)
    path = out / "hand-made.p7m"
    path.write_bytes(envelope)
    signature = sign_detached(signer, hashlib.sha256(envelope).digest(), service.clock.now())
    service.bidder.submit_bid(tender_id, path, signature)


def _envelope_around(inner: bytes, tender_cert: bytes) -> bytes:
    out = io.BytesIO()
    seal_envelope(io.BytesIO(inner), out, [tender_cert], "sha1")
    return out.getvalue()


def test_each_faulty_bid_gets_its_status_and_the_good_bid_still_opens(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    cert = tender.tender_certificate

    good = seal_for(service, tender, "alpha", tmp_path / "good")
    service.bidder.submit_bid(tid, good.envelope_path, good.outer_signature_der)

    # beta's envelope holds a package signed by gamma: SIGNER_MISMATCH.
    other = seal_for(service, tender, "gamma", tmp_path / "other")
    gamma = load_signer(service.pki.bidders["gamma"].key, service.pki.bidders["gamma"].cert)
    package = (tmp_path / "other" / "package.zip").read_bytes()
    inner = sign_attached(gamma, package, service.clock.now())
    _submit_raw(service, tid, _envelope_around(inner, cert), "beta", tmp_path)
    del other

    # delta's package says it is for another tender: MALFORMED_PACKAGE.
    wrong = seal_for(service, tender, "delta", tmp_path / "wrong", tender_id="T-elsewhere")
    service.bidder.submit_bid(tid, wrong.envelope_path, wrong.outer_signature_der)

    # gamma's ciphertext is damaged after sealing (the service cannot see it before the
    # opening: only the GCM tag can): DECRYPTION_FAILED.
    damaged_bid = seal_for(service, tender, "gamma", tmp_path / "damaged")
    data = bytearray(damaged_bid.envelope_path.read_bytes())
    info = inspect_envelope(damaged_bid.envelope_path)
    data[info.ciphertext_offset + 10] ^= 0x01
    _submit_raw(service, tid, bytes(data), "gamma", tmp_path)

    service.clock.advance(timedelta(hours=2))
    try:
        record = json.loads(service.operator.open_tender(tid).record_json)
    finally:
        service.clock.advance(-timedelta(hours=2))
    status = {b["bidder"]["organisation"]: b["status"] for b in record["bids"]}
    companies = {
        name: service.pki.bidders[name].company for name in ("alpha", "beta", "gamma", "delta")
    }
    assert status == {
        companies["alpha"]: "OPENED",
        companies["beta"]: "SIGNER_MISMATCH",
        companies["delta"]: "MALFORMED_PACKAGE",
        companies["gamma"]: "DECRYPTION_FAILED",
    }
    failed = [b for b in record["bids"] if b["status"] != "OPENED"]
    assert all(b["reason"] and b["form"] is None for b in failed)
    assert not list((service.settings.work_dir / "opening" / tid).iterdir())


def test_a_token_failure_stops_the_opening_and_stores_no_record(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    sealed = seal_for(service, tender, "alpha", tmp_path)
    service.bidder.submit_bid(tid, sealed.envelope_path, sealed.outer_signature_der)
    service.app.context.token.destroy_tender_key(tid)
    service.clock.advance(timedelta(hours=2))
    try:
        with pytest.raises(ServiceError) as failed:
            service.operator.open_tender(tid)
    finally:
        service.clock.advance(-timedelta(hours=2))
    assert (failed.value.code, failed.value.status) == ("TOKEN_ERROR", "UNAVAILABLE")
    with pytest.raises(ServiceError) as missing:
        service.bidder.get_record(tid)
    assert missing.value.code == "RECORD_NOT_FOUND"
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        assert Repository(session).get_tender(tid).state.value == "accepting"
        assert len(Repository(session).key_uses(tid)) == 1  # the attempt is on record
