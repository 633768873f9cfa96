"""Bidder participation at a remote opening: a bid sealed also to the bidder's own
certificate; between the opening time and the opening the bidder releases the content key
it recovered with its own key (``ReleaseContentKey``, signed); the opening opens that bid
with it and uses no tender key for its content. A key that does not open the bid, or no
key, leaves the tender key to open it. Every refusal changes nothing, and a refusal to a
signer says nothing about others' bids. The keys never reach the database or the logs."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select

from sealed_bid.cli.common import load_signer
from sealed_bid.cli.main import main
from sealed_bid.client import ServiceError
from sealed_bid.crypto.envelope import seal_envelope
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.released_key import recover_own_content_key
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.crypto.signed_data import sign_attached, sign_detached
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import BidId, EnvelopeDigest, TenderId
from sealed_bid.domain.key_release import KeyRelease
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry
from sealed_bid.storage.repository import Repository
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service
from tests.e2e.support import assert_refused, read_state_files

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]

_ids = itertools.count(1)


# --- Helpers ------------------------------------------------------------------------------
def _signer(service: Service, bidder: str) -> Signer:
    files = service.pki.bidders[bidder]
    return load_signer(files.key, files.cert)


def _own_key(service: Service, bidder: str) -> rsa.RSAPrivateKey:
    key = load_pem_private_key(service.pki.bidders[bidder].key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _create(service: Service, opening_after: timedelta = timedelta(minutes=10)) -> pb.Tender:
    now = service.clock.now()
    return service.operator.create_tender(
        f"P-{next(_ids):04d}",
        "Bridge maintenance, lot 3",
        now + opening_after / 2,
        now + opening_after,
        ["dev-bidder-ca"],
    )


def _package(tender: pb.Tender, company: str, workdir: Path) -> Path:
    form = BidForm(
        tender_id=TenderId(tender.tender_id),
        bidder_name=company,
        price=Decimal("3100000.00"),
        currency="CNY",
        duration_days=120,
        fields={},
    )
    workdir.mkdir(parents=True, exist_ok=True)
    package = workdir / "package.zip"
    with package.open("wb") as f:
        build_package(form, {}, f)
    return package


def _seal(
    service: Service, tender: pb.Tender, bidder: str, workdir: Path, *, own: bool = True
) -> SealedBid:
    """``bidder``'s bid, sealed to the tender and (``own``) to the bidder's certificate."""
    signer = _signer(service, bidder)
    return seal_bid(
        _package(tender, service.pki.bidders[bidder].company, workdir),
        signer,
        tender.tender_certificate,
        workdir,
        oaep_hash="sha1",
        signing_time=service.clock.now(),
        also_to=(signer.certificate_der,) if own else (),
    )


def _submit(service: Service, tender: pb.Tender, sealed: SealedBid) -> str:
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt.content.bid_id


def _past_opening(service: Service, tender: pb.Tender) -> None:
    service.clock.set(tender.opening_time.ToDatetime(tzinfo=UTC) + timedelta(seconds=1))


def _release(
    service: Service,
    signer: Signer,
    tender_id: str,
    bid_id: str,
    envelope_sha256: str,
    content_key: bytes,
    when: datetime | None = None,
) -> bytes:
    statement = KeyRelease(
        TenderId(tender_id), BidId(bid_id), EnvelopeDigest(envelope_sha256), content_key
    ).to_bytes()
    return sign_attached(signer, statement, when or service.clock.now())


def _own_content_key(service: Service, bidder: str, sealed: SealedBid) -> bytes:
    return recover_own_content_key(
        sealed.envelope_path, _signer(service, bidder).certificate_der, _own_key(service, bidder)
    )


def _key_uses(service: Service, tender_id: str) -> list[tuple[str | None, str]]:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return [(u.bid_id, str(u.operation)) for u in Repository(session).key_uses(tender_id)]


def _audit(service: Service, tender_id: str, event: str) -> list[AuditEntry]:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.tender_id == tender_id, AuditEntry.event == event)
                .order_by(AuditEntry.seq)
            )
        )


def _refused(
    service: Service, tender_id: str, call: Callable[[], object], code: str, status: str
) -> ServiceError:
    """``assert_refused``, and no key is held (or dropped) for the tender either."""
    desk = service.app.context.released_keys
    held = desk.count(tender_id)
    error = assert_refused(service, tender_id, call, code, status)
    assert desk.count(tender_id) == held
    return error


def _rows(record: pb.OpeningRecord) -> dict[str, dict[str, object]]:
    return {row["bid_id"]: row for row in json.loads(record.record_json)["bids"]}


def _assert_nowhere(service: Service, caplog: pytest.LogCaptureFixture, keys: list[bytes]) -> None:
    """Neither the keys nor their hex in any file of the service's state (database,
    blobs, records; read by a child process, see ``read_state_files``) or in anything
    logged."""
    files = read_state_files(service)
    assert "sealed-bid.db" in files
    logged = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for name, data in files.items():
        for key in keys:
            for form in (key, key.hex().encode(), key.hex().upper().encode()):
                assert form not in data, f"a released key is in {name}"
    for key in keys:
        assert key.hex() not in logged.lower()


# --- Before the opening time --------------------------------------------------------------
def test_before_the_opening_time_every_release_is_NOT_YET_OPEN(
    service: Service, tmp_path: Path
) -> None:
    tender = _create(service)
    tid = tender.tender_id
    sealed = _seal(service, tender, "alpha", tmp_path / "alpha")
    bid = _submit(service, tender, sealed)
    key = _own_content_key(service, "alpha", sealed)
    service.clock.set(tender.opening_time.ToDatetime(tzinfo=UTC) - timedelta(seconds=1))
    messages = []
    for who in ("alpha", "gamma"):  # its bidder, and a signer without a bid: the same answer
        release = _release(service, _signer(service, who), tid, bid, sealed.sha256, key)
        refused = _refused(
            service,
            tid,
            lambda: service.bidder.release_content_key(release),  # noqa: B023
            "NOT_YET_OPEN",
            "FAILED_PRECONDITION",
        )
        messages.append(refused.message)
    assert messages[0] == messages[1]
    assert service.app.context.released_keys.get(tid, bid) is None
    assert _audit(service, tid, "bid.key_released") == []


# --- The opening with released keys -------------------------------------------------------
def test_the_bidders_own_key_opens_its_bid_and_the_tender_key_is_the_fallback(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tender = _create(service)
    tid = tender.tender_id
    names = ("alpha", "gamma", "delta")  # all three sealed also to their own certificates
    sealed = {name: _seal(service, tender, name, tmp_path / name) for name in names}
    bids = {name: _submit(service, tender, s) for name, s in sealed.items()}
    alpha_key = _own_content_key(service, "alpha", sealed["alpha"])
    wrong_key = os.urandom(32)
    _past_opening(service, tender)

    # alpha releases its own key; gamma releases a wrong one; delta releases nothing.
    response = service.bidder.release_content_key(
        _release(
            service,
            _signer(service, "alpha"),
            tid,
            bids["alpha"],
            sealed["alpha"].sha256,
            alpha_key,
        )
    )
    assert (response.bid_id, response.accepted) == (bids["alpha"], True)
    service.bidder.release_content_key(
        _release(
            service,
            _signer(service, "gamma"),
            tid,
            bids["gamma"],
            sealed["gamma"].sha256,
            wrong_key,
        )
    )
    # Releasing again replaces the key held (a second audit entry says so).
    service.clock.advance(timedelta(seconds=1))
    service.bidder.release_content_key(
        _release(
            service,
            _signer(service, "alpha"),
            tid,
            bids["alpha"],
            sealed["alpha"].sha256,
            alpha_key,
        )
    )
    desk = service.app.context.released_keys
    assert desk.get(tid, bids["alpha"]) == alpha_key
    assert desk.get(tid, bids["gamma"]) == wrong_key
    assert desk.get(tid, bids["delta"]) is None
    entries = _audit(service, tid, "bid.key_released")
    assert [(e.bid_id, json.loads(e.fields_json)) for e in entries] == [
        (bids["alpha"], {"envelope_sha256": sealed["alpha"].sha256, "replaced": False}),
        (bids["gamma"], {"envelope_sha256": sealed["gamma"].sha256, "replaced": False}),
        (bids["alpha"], {"envelope_sha256": sealed["alpha"].sha256, "replaced": True}),
    ]
    assert _key_uses(service, tid) == []  # a release uses no key and decrypts nothing

    record = service.operator.open_tender(tid)

    rows = _rows(record)
    assert {n: (rows[b]["status"], rows[b]["opened_with"]) for n, b in bids.items()} == {
        "alpha": ("OPENED", "bidder_key"),
        "gamma": ("OPENED", "tender_key"),
        "delta": ("OPENED", "tender_key"),
    }
    assert rows[bids["alpha"]]["note"] is None and rows[bids["delta"]]["note"] is None
    assert rows[bids["gamma"]]["note"] == (
        "the content key the bidder released did not open the bid (DECRYPTION_FAILED);"
        " the tender key was used instead"
    )
    # The bid opened with its bidder's key looks like any other (same form, same digests).
    assert rows[bids["alpha"]]["form"]["bidder_name"] == service.pki.bidders["alpha"].company
    assert rows[bids["alpha"]]["bidder"]["organisation"] == service.pki.bidders["alpha"].company
    assert rows[bids["alpha"]]["package_sha256"] is not None
    # Key uses: alpha's identity was unsealed (a tender-key use), its content key was not
    # recovered on the token; gamma's and delta's were.
    uses = _key_uses(service, tid)
    assert sorted(op for b, op in uses if b == bids["alpha"]) == ["unseal"]
    assert sorted(op for b, op in uses if b == bids["gamma"]) == ["decrypt_key", "unseal"]
    assert sorted(op for b, op in uses if b == bids["delta"]) == ["decrypt_key", "unseal"]
    decrypt_key_entries = [
        e.bid_id
        for e in _audit(service, tid, "key.used")
        if json.loads(e.fields_json)["operation"] == "decrypt_key"
    ]
    assert sorted(decrypt_key_entries) == sorted([bids["gamma"], bids["delta"]])
    # Forgotten once the tender is opened; a release now is ALREADY_OPENED.
    assert desk.count(tid) == 0
    late = _release(
        service, _signer(service, "alpha"), tid, bids["alpha"], sealed["alpha"].sha256, alpha_key
    )
    _refused(
        service,
        tid,
        lambda: service.bidder.release_content_key(late),
        "ALREADY_OPENED",
        "FAILED_PRECONDITION",
    )
    _assert_nowhere(service, caplog, [alpha_key, wrong_key])


def test_a_released_key_can_open_a_bid_never_make_it_fail(service: Service, tmp_path: Path) -> None:
    """A released key that opens the envelope to a bid that fails (here: the package signed
    by another bidder) does not decide: the tender key opens it again, and its row says so."""
    tender = _create(service)
    tid = tender.tender_id
    alpha = _signer(service, "alpha")
    package = _package(tender, "Alpha", tmp_path)
    inner = sign_attached(_signer(service, "gamma"), package.read_bytes(), service.clock.now())
    envelope = tmp_path / "bid.p7m"
    with envelope.open("wb") as dst:
        seal_envelope(
            io.BytesIO(inner), dst, [tender.tender_certificate, alpha.certificate_der], "sha1"
        )
    digest = hashlib.sha256(envelope.read_bytes()).digest()
    bid = service.bidder.submit_bid(
        tid, envelope, sign_detached(alpha, digest, service.clock.now())
    ).receipt.content.bid_id
    key = recover_own_content_key(envelope, alpha.certificate_der, _own_key(service, "alpha"))
    _past_opening(service, tender)
    service.bidder.release_content_key(_release(service, alpha, tid, bid, digest.hex(), key))

    row = _rows(service.operator.open_tender(tid))[bid]

    assert (row["status"], row["opened_with"]) == ("SIGNER_MISMATCH", None)
    assert row["note"] == (
        "the content key the bidder released did not open the bid (SIGNER_MISMATCH);"
        " the tender key was used instead"
    )
    assert sorted(op for _, op in _key_uses(service, tid)) == ["decrypt_key", "unseal"]


def test_a_release_for_a_bid_an_unfinished_opening_has_opened_is_ALREADY_OPENED(
    service: Service, tmp_path: Path
) -> None:
    """An opening that stopped after opening the bids (here: its record could not be
    written) keeps their rows; a release for one of them is too late, and the resumed
    opening does not open it again."""
    tender = _create(service)
    tid = tender.tender_id
    sealed = _seal(service, tender, "alpha", tmp_path)
    bid = _submit(service, tender, sealed)
    key = _own_content_key(service, "alpha", sealed)
    _past_opening(service, tender)
    records = service.settings.records_dir
    aside = records.with_name("records-aside")
    records.mkdir(parents=True, exist_ok=True)
    records.rename(aside)
    try:
        records.write_bytes(b"not a directory")  # the record cannot be written
        with pytest.raises(ServiceError) as failed:
            service.operator.open_tender(tid)
        assert failed.value.code == "INTERNAL_ERROR"
    finally:
        records.unlink()
        aside.rename(records)
    release = _release(service, _signer(service, "alpha"), tid, bid, sealed.sha256, key)
    refused = _refused(
        service,
        tid,
        lambda: service.bidder.release_content_key(release),
        "ALREADY_OPENED",
        "FAILED_PRECONDITION",
    )
    assert bid in refused.message
    row = _rows(service.operator.open_tender(tid))[bid]
    assert (row["status"], row["opened_with"]) == ("OPENED", "tender_key")


# --- Who may release ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Case:
    signer: str
    bid: str
    digest: str
    tender: str


def test_a_release_for_a_bid_that_is_not_the_signers_current_one_is_NOT_A_BIDDER(
    service: Service, tmp_path: Path
) -> None:
    tender, other = _create(service), _create(service)
    tid = tender.tender_id
    alpha = _seal(service, tender, "alpha", tmp_path / "alpha")
    alpha_bid = _submit(service, tender, alpha)
    replaced = _seal(service, tender, "delta", tmp_path / "delta-1")
    replaced_bid = _submit(service, tender, replaced)
    service.clock.advance(timedelta(seconds=1))
    delta_bid = _submit(service, tender, _seal(service, tender, "delta", tmp_path / "delta-2"))
    assert delta_bid != replaced_bid
    key = _own_content_key(service, "alpha", alpha)
    _past_opening(service, tender)
    cases = {
        "never bid": _Case("gamma", alpha_bid, alpha.sha256, tid),
        "another's bid": _Case("delta", alpha_bid, alpha.sha256, tid),
        "no such bid": _Case("alpha", "bid-000000000000000000000000", alpha.sha256, tid),
        "another envelope": _Case("alpha", alpha_bid, replaced.sha256, tid),
        "replaced bid": _Case("delta", replaced_bid, replaced.sha256, tid),
        "another tender": _Case("alpha", alpha_bid, alpha.sha256, other.tender_id),
    }
    assert other.opening_time == tender.opening_time  # created at the same clock time
    messages = set()
    for name, case in cases.items():
        release = _release(
            service, _signer(service, case.signer), case.tender, case.bid, case.digest, key
        )
        refused = _refused(
            service,
            case.tender,
            lambda: service.bidder.release_content_key(release),  # noqa: B023
            "NOT_A_BIDDER",
            "PERMISSION_DENIED",
        )
        messages.add(refused.message.replace(case.bid, "<bid>").replace(case.tender, "<t>"))
        assert service.pki.bidders["alpha"].company not in refused.message, name
    assert len(messages) == 1, messages
    assert service.app.context.released_keys.count(tid) == 0
    assert _audit(service, tid, "bid.key_released") == []


def test_malformed_or_badly_signed_releases_are_refused(service: Service, tmp_path: Path) -> None:
    tender = _create(service)
    tid = tender.tender_id
    sealed = _seal(service, tender, "alpha", tmp_path)
    bid = _submit(service, tender, sealed)
    key = _own_content_key(service, "alpha", sealed)
    _past_opening(service, tender)
    alpha = _signer(service, "alpha")
    statement = KeyRelease(TenderId(tid), BidId(bid), EnvelopeDigest(sealed.sha256), key)
    bad_json = statement.to_bytes().replace(b'"content_key"', b'"key"')
    cases = [
        (b"", "STATEMENT_INVALID", "INVALID_ARGUMENT"),
        (statement.to_bytes(), "SIGNATURE_MALFORMED", "INVALID_ARGUMENT"),
        (
            sign_attached(alpha, bad_json, service.clock.now()),
            "STATEMENT_INVALID",
            "INVALID_ARGUMENT",
        ),
        (
            _release(
                service,
                alpha,
                tid,
                bid,
                sealed.sha256,
                key,
                service.clock.now() - timedelta(hours=1),
            ),
            "SIGNING_TIME_INVALID",
            "INVALID_ARGUMENT",
        ),
        (
            _release(service, _signer(service, "revoked"), tid, bid, sealed.sha256, key),
            "SIGNER_REVOKED",
            "PERMISSION_DENIED",
        ),
        (
            _release(service, alpha, "T-no-such-tender", bid, sealed.sha256, key),
            "TENDER_NOT_FOUND",
            "NOT_FOUND",
        ),
    ]
    for signed, code, status in cases:
        error = _refused(
            service,
            tid,
            lambda: service.bidder.release_content_key(signed),  # noqa: B023
            code,
            status,
        )
        assert key.hex() not in error.message
    assert service.app.context.released_keys.count(tid) == 0


# --- Envelopes with more recipients -------------------------------------------------------
def _openssl_encrypt(inner: Path, out: Path, recipients: list[tuple[Path, bool]]) -> None:
    command = [
        *("openssl", "cms", "-encrypt", "-binary", "-outform", "DER", "-aes-256-gcm"),
        *("-in", str(inner), "-out", str(out)),
    ]
    for cert, oaep in recipients:
        command += ["-recip", str(cert)]
        if oaep:
            command += ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha1"]
    subprocess.run(command, check=True, capture_output=True)


@pytest.mark.openssl
@pytest.mark.parametrize("bidder", ["alpha", "beta"], ids=["rsa-own-key", "ec-key-agreement"])
def test_an_openssl_envelope_also_to_the_bidders_own_certificate_is_accepted_and_opens(
    service: Service, tmp_path: Path, bidder: str
) -> None:
    tender = _create(service)
    tender_der, tender_pem = tmp_path / "tender.der", tmp_path / "tender.pem"
    tender_der.write_bytes(tender.tender_certificate)
    subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", str(tender_der), "-out", str(tender_pem)],
        check=True,
        capture_output=True,
    )
    signer = _signer(service, bidder)
    package = _package(tender, service.pki.bidders[bidder].company, tmp_path)
    inner = tmp_path / "inner.p7s"
    inner.write_bytes(sign_attached(signer, package.read_bytes(), service.clock.now()))
    envelope = tmp_path / "bid.p7m"
    # The bidder's own RecipientInfo: RSA-OAEP for alpha, ECDH key agreement for beta.
    _openssl_encrypt(
        inner,
        envelope,
        [(tender_pem, True), (service.pki.bidders[bidder].cert, bidder != "beta")],
    )
    digest = hashlib.sha256(envelope.read_bytes()).digest()
    bid = service.bidder.submit_bid(
        tender.tender_id, envelope, sign_detached(signer, digest, service.clock.now())
    ).receipt.content.bid_id
    _past_opening(service, tender)

    row = _rows(service.operator.open_tender(tender.tender_id))[bid]

    assert (row["status"], row["opened_with"], row["note"]) == ("OPENED", "tender_key", None)


def test_an_envelope_to_more_than_four_recipients_is_RECIPIENT_MISMATCH(
    service: Service, tmp_path: Path
) -> None:
    tender, other = _create(service), _create(service)
    alpha = _signer(service, "alpha")
    recipients = [
        tender.tender_certificate,
        alpha.certificate_der,
        _signer(service, "gamma").certificate_der,
        _signer(service, "delta").certificate_der,
        other.tender_certificate,
    ]
    inner = sign_attached(alpha, b"not a package; never opened", service.clock.now())
    for count, accepted in ((5, False), (4, True)):
        envelope = tmp_path / f"to-{count}.p7m"
        with envelope.open("wb") as dst:
            seal_envelope(io.BytesIO(inner), dst, recipients[:count], "sha1")
        signature = sign_detached(
            alpha, hashlib.sha256(envelope.read_bytes()).digest(), service.clock.now()
        )
        if accepted:
            service.bidder.submit_bid(tender.tender_id, envelope, signature)
            continue
        refused = _refused(
            service,
            tender.tender_id,
            lambda: service.bidder.submit_bid(tender.tender_id, envelope, signature),  # noqa: B023
            "RECIPIENT_MISMATCH",
            "INVALID_ARGUMENT",
        )
        assert "at most 4" in refused.message


# --- The command line ---------------------------------------------------------------------
def test_the_cli_seals_also_to_ones_own_certificate_and_releases_the_key(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI signs with the real time: put the service clock there (restored afterwards).
    service.clock.set(datetime.now(UTC).replace(microsecond=0))
    tender = _create(service, opening_after=timedelta(minutes=2))
    tid = tender.tender_id
    files = service.pki.bidders["alpha"]
    tender_cert = tmp_path / "tender.der"
    tender_cert.write_bytes(tender.tender_certificate)
    package = _package(tender, files.company, tmp_path / "package")
    out = tmp_path / "sealed"
    connection = [
        *("--address", f"127.0.0.1:{service.server.public_port}"),
        *("--ca-file", str(service.pki.platform_root.cert)),
    ]
    assert (
        main(
            [
                *("bid", "seal", "--package", str(package), "--tender-cert", str(tender_cert)),
                *("--key", str(files.key), "--cert", str(files.cert)),
                *("--also-to", str(files.cert), "--out", str(out)),
            ]
        )
        == 0
    )
    envelope = out / "bid.p7m"
    bid = service.bidder.submit_bid(
        tid, envelope, (out / "bid.p7s").read_bytes()
    ).receipt.content.bid_id
    release_args = [
        *("bid", "release-key", "--tender", tid, "--bid", bid, "--envelope", str(envelope)),
        *("--key", str(files.key), "--cert", str(files.cert), *connection),
    ]
    capsys.readouterr()
    assert main(release_args) == 2  # before the opening time
    assert "NOT_YET_OPEN (FAILED_PRECONDITION)" in capsys.readouterr().err
    _past_opening(service, tender)

    assert main(release_args) == 0

    printed = capsys.readouterr()
    assert f"content key of bid {bid} released" in printed.out
    key = recover_own_content_key(
        envelope, load_signer(files.key, files.cert).certificate_der, _own_key(service, "alpha")
    )
    assert key.hex() not in printed.out + printed.err
    assert service.app.context.released_keys.get(tid, bid) == key
    row = _rows(service.operator.open_tender(tid))[bid]
    assert (row["status"], row["opened_with"]) == ("OPENED", "bidder_key")
    assert sorted(op for _, op in _key_uses(service, tid)) == ["unseal"]


def test_the_cli_refuses_an_EC_certificate_for_also_to_and_release_key(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tender = _create(service)
    beta = service.pki.bidders["beta"]
    tender_cert = tmp_path / "tender.der"
    tender_cert.write_bytes(tender.tender_certificate)
    package = _package(tender, beta.company, tmp_path / "package")
    seal = [
        *("bid", "seal", "--package", str(package), "--tender-cert", str(tender_cert)),
        *("--key", str(beta.key), "--cert", str(beta.cert)),
        *("--also-to", str(beta.cert), "--out", str(tmp_path / "out")),
    ]
    assert main(seal) == 2
    assert "key agreement" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bid.p7m").exists()
    with pytest.raises(SystemExit, match="only an RSA key"):
        main(
            [
                *("bid", "release-key", "--tender", tender.tender_id, "--bid", "bid-x"),
                *("--envelope", str(tmp_path / "none.p7m"), "--key", str(beta.key)),
                *("--cert", str(beta.cert)),
                *("--ca-file", str(service.pki.platform_root.cert)),
            ]
        )
