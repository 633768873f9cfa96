"""The audit log: gap-free global sequence, hash chain, signatures, tamper detection."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, select, text, update

from sealed_bid.storage.audit_log import (
    AuditChainBroken,
    AuditLog,
    VerifyFunction,
    compute_entry_hash,
)
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import GENESIS_HASH, AuditEntry, AuditHead

T0 = datetime(2030, 5, 1, 9, 0, 0, 250000, tzinfo=UTC)


def _append_n(engine: Engine, log: AuditLog, n: int, tender_id: str = "T-1") -> None:
    for i in range(n):
        with unit_of_work(engine) as session:
            log.append(
                session,
                T0 + timedelta(seconds=i),
                "bid.accepted",
                tender_id,
                f"bid-{i}",
                {"envelope_sha256": "ab" * 32, "size": 100 + i, "replaced": False, "note": None},
            )


def test_the_first_entry_has_seq_1_and_links_to_the_genesis_hash(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        entry = AuditLog().append(session, T0, "tender.created", "T-1", None, {"n": 1})
    assert (entry.seq, entry.prev_hash) == (1, GENESIS_HASH)


def test_each_entry_links_to_the_hash_of_the_one_before(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 3)
    with unit_of_work(engine) as session:
        entries = AuditLog.entries(session)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].entry_hash
    assert entries[2].prev_hash == entries[1].entry_hash


def test_the_entry_hash_is_sha256_over_the_documented_canonical_encoding() -> None:
    # An independent re-implementation of the documented encoding, so that a change of
    # encoding (which would orphan every published hash) fails here.
    fields_json = '{"size":5}'
    expected_preimage = (
        b"sealed-bid/audit/v1\n"
        b'{"at":"2030-05-01T09:00:00.250000Z","bid_id":"bid-1","event":"bid.accepted",'
        b'"fields":"{\\"size\\":5}","prev_hash":"' + GENESIS_HASH.encode() + b'",'
        b'"seq":1,"tender_id":"T-1"}'
    )
    assert (
        compute_entry_hash(
            seq=1,
            at=T0,
            event="bid.accepted",
            tender_id="T-1",
            bid_id="bid-1",
            fields_json=fields_json,
            prev_hash=GENESIS_HASH,
        )
        == hashlib.sha256(expected_preimage).hexdigest()
    )


def test_fields_are_stored_as_canonical_json(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        entry = AuditLog().append(
            session, T0, "bid.accepted", "T-1", "bid-1", {"z": 1, "a": "x", "m": True}
        )
    assert entry.fields_json == '{"a":"x","m":true,"z":1}'


@pytest.mark.parametrize("bad", [1.5, ["list"], {"nested": 1}, b"bytes"])
def test_fields_other_than_str_int_bool_none_are_refused(engine: Engine, bad: object) -> None:
    with pytest.raises(TypeError), unit_of_work(engine) as session:
        AuditLog().append(session, T0, "bid.accepted", "T-1", None, {"v": bad})  # type: ignore[dict-item]


def test_a_naive_time_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="naive"), unit_of_work(engine) as session:
        AuditLog().append(session, datetime(2030, 1, 1), "tender.created", "T-1", None, {})


def test_a_rolled_back_state_change_leaves_no_entry_and_no_gap(engine: Engine) -> None:
    log = AuditLog()

    class Refused(Exception):
        pass

    with pytest.raises(Refused), unit_of_work(engine) as session:
        log.append(session, T0, "bid.accepted", "T-1", "bid-x", {})
        raise Refused
    with unit_of_work(engine) as session:
        entry = log.append(session, T0, "bid.accepted", "T-1", "bid-y", {})
    assert (entry.seq, entry.bid_id) == (1, "bid-y")
    with unit_of_work(engine) as session:
        assert log.verify_chain(session) == 1


def test_concurrent_appends_get_gap_free_sequence_numbers(engine: Engine) -> None:
    workers, per_worker = 6, 15
    log = AuditLog()
    errors: list[BaseException] = []
    got: list[int] = []
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(per_worker):
                with unit_of_work(engine) as session:
                    entry = log.append(
                        session, T0, "bid.accepted", f"T-{worker}", f"bid-{worker}-{i}", {}
                    )
                got.append(entry.seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == list(range(1, workers * per_worker + 1))
    with unit_of_work(engine, read_only=True) as session:
        assert log.verify_chain(session) == workers * per_worker


def test_verify_chain_counts_the_entries_of_an_intact_log(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 5)
    with unit_of_work(engine, read_only=True) as session:
        assert AuditLog().verify_chain(session) == 5


def test_an_empty_log_verifies_with_zero_entries(engine: Engine) -> None:
    with unit_of_work(engine, read_only=True) as session:
        assert AuditLog().verify_chain(session) == 0


def test_verify_chain_names_the_first_entry_whose_content_was_changed(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 5)
    with engine.begin() as conn:
        conn.execute(
            update(AuditEntry)
            .where(AuditEntry.seq.in_([3, 4]))
            .values(fields_json=json.dumps({"size": 1}))
        )
    with pytest.raises(AuditChainBroken) as broken, unit_of_work(engine) as session:
        AuditLog().verify_chain(session)
    assert broken.value.seq == 3
    assert broken.value.code == "AUDIT_CHAIN_BROKEN"


def test_verify_chain_detects_a_rehashed_entry_by_the_broken_link(engine: Engine) -> None:
    """Recomputing the tampered entry's own hash is not enough: the next link breaks."""
    _append_n(engine, AuditLog(), 4)
    with unit_of_work(engine) as session:
        entry = session.get(AuditEntry, 2)
        assert entry is not None
        entry.event = "bid.withdrawn"
        entry.entry_hash = compute_entry_hash(
            seq=2,
            at=entry.at,
            event=entry.event,
            tender_id=entry.tender_id,
            bid_id=entry.bid_id,
            fields_json=entry.fields_json,
            prev_hash=entry.prev_hash,
        )
    with pytest.raises(AuditChainBroken) as broken, unit_of_work(engine) as session:
        AuditLog().verify_chain(session)
    assert broken.value.seq == 3


def test_verify_chain_detects_a_deleted_entry(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 5)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq = 2"))
    with pytest.raises(AuditChainBroken) as broken, unit_of_work(engine) as session:
        AuditLog().verify_chain(session)
    assert broken.value.seq == 2


def test_verify_chain_detects_entries_cut_from_the_tail(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 5)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq >= 4"))
    with pytest.raises(AuditChainBroken) as broken, unit_of_work(engine) as session:
        AuditLog().verify_chain(session)
    assert broken.value.seq == 4


def test_verify_chain_detects_a_head_that_does_not_match_the_last_entry(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 2)
    with engine.begin() as conn:
        conn.execute(update(AuditHead).values(last_hash="f" * 64))
    with pytest.raises(AuditChainBroken) as broken, unit_of_work(engine) as session:
        AuditLog().verify_chain(session)
    assert broken.value.seq == 2


# --- signatures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audit_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _signer(key: ec.EllipticCurvePrivateKey) -> AuditLog:
    return AuditLog(sign=lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))


def _verifier(key: ec.EllipticCurvePrivateKey) -> VerifyFunction:
    public = key.public_key()

    def verify(message: bytes, signature: bytes) -> None:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    return verify


def test_signed_entries_verify_with_the_audit_public_key(
    engine: Engine, audit_key: ec.EllipticCurvePrivateKey
) -> None:
    _append_n(engine, _signer(audit_key), 3)
    with unit_of_work(engine) as session:
        assert AuditLog().verify_chain(session, verify_signature=_verifier(audit_key)) == 3


def test_the_signature_covers_the_raw_entry_hash(
    engine: Engine, audit_key: ec.EllipticCurvePrivateKey
) -> None:
    with unit_of_work(engine) as session:
        entry = _signer(audit_key).append(session, T0, "tender.created", "T-1", None, {})
    assert entry.signature is not None
    audit_key.public_key().verify(
        entry.signature, bytes.fromhex(entry.entry_hash), ec.ECDSA(hashes.SHA256())
    )


def test_a_signature_by_another_key_is_reported_with_its_seq(
    engine: Engine, audit_key: ec.EllipticCurvePrivateKey
) -> None:
    _append_n(engine, _signer(audit_key), 2)
    intruder = ec.generate_private_key(ec.SECP256R1())
    with unit_of_work(engine) as session:
        _signer(intruder).append(session, T0, "tender.opened", "T-1", None, {})
    with pytest.raises(AuditChainBroken) as broken, unit_of_work(engine) as session:
        AuditLog().verify_chain(session, verify_signature=_verifier(audit_key))
    assert broken.value.seq == 3


def test_an_unsigned_entry_fails_when_signatures_are_required(
    engine: Engine, audit_key: ec.EllipticCurvePrivateKey
) -> None:
    _append_n(engine, AuditLog(), 1)
    with unit_of_work(engine) as session:
        assert AuditLog().verify_chain(session) == 1
    with pytest.raises(AuditChainBroken, match="not signed"), unit_of_work(engine) as session:
        AuditLog().verify_chain(session, verify_signature=_verifier(audit_key))


def test_entries_can_be_listed_per_tender(engine: Engine) -> None:
    _append_n(engine, AuditLog(), 2, tender_id="T-1")
    _append_n(engine, AuditLog(), 1, tender_id="T-2")
    with unit_of_work(engine) as session:
        assert [e.seq for e in AuditLog.entries(session, tender_id="T-2")] == [3]
        assert [e.seq for e in AuditLog.entries(session, after_seq=1, limit=1)] == [2]
        assert session.scalar(select(AuditHead.last_seq)) == 3
