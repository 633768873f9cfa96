"""The repository: tenders, bids, slots, withdrawals, key uses and opening records."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from sealed_bid.errors import (
    AlreadyOpened,
    BidNotFound,
    RecordNotFound,
    StorageError,
    TenderExists,
    TenderNotFound,
)
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import (
    Bid,
    BidderSlot,
    BidStatus,
    CertificateExpiry,
    KeyOperation,
    KeyUse,
    OpeningRecord,
    Tender,
    TenderState,
    Withdrawal,
)
from sealed_bid.storage.repository import Repository

TenderFactory = Callable[..., Tender]
T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
TAG_A = "tag-" + "a" * 60
TAG_B = "tag-" + "b" * 60


def _bid(bid_id: str, seq: int, *, tag: str = TAG_A, tender_id: str = "T-1", **kw: object) -> Bid:
    values: dict[str, object] = {
        "id": bid_id,
        "tender_id": tender_id,
        "bidder_tag": tag,
        "envelope_sha256": hashlib.sha256(bid_id.encode()).hexdigest(),
        "size": 1234,
        "received_at": T0 + timedelta(minutes=seq),
        "signing_time": T0 + timedelta(minutes=seq),
        "log_sequence": seq,
        "status": BidStatus.CURRENT,
        "sealed_identity_blob": hashlib.sha256(b"sealed" + bid_id.encode()).hexdigest(),
        "expires_before_opening": CertificateExpiry.NONE,
        "receipt_der": b"\x30\x03\x02\x01\x01",
    }
    values.update(kw)
    return Bid(**values)


@pytest.fixture
def tender_engine(engine: Engine, new_tender: TenderFactory) -> Engine:
    """An engine whose database holds tender T-1."""
    with unit_of_work(engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
    return engine


# --- tenders ------------------------------------------------------------------------------
def test_a_tender_id_can_be_used_only_once(
    tender_engine: Engine, new_tender: TenderFactory
) -> None:
    with pytest.raises(TenderExists), unit_of_work(tender_engine) as session:
        Repository(session).add_tender(new_tender("T-1", title="Another"))
    with unit_of_work(tender_engine) as session:
        assert Repository(session).get_tender("T-1").title == "Road maintenance, lot 1"


def test_a_duplicate_tender_leaves_the_unit_of_work_usable(
    tender_engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        with pytest.raises(TenderExists):
            repo.add_tender(new_tender("T-1"))
        repo.add_tender(new_tender("T-2"))
    with unit_of_work(tender_engine) as session:
        assert {t.id for t in Repository(session).list_tenders()} == {"T-1", "T-2"}


def test_getting_an_unknown_tender_raises_TENDER_NOT_FOUND(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        with pytest.raises(TenderNotFound):
            Repository(session).get_tender("nope")
        with pytest.raises(TenderNotFound):
            Repository(session).lock_tender("nope")


def test_tenders_are_listed_newest_first(engine: Engine, new_tender: TenderFactory) -> None:
    with unit_of_work(engine) as session:
        repo = Repository(session)
        repo.add_tender(new_tender("T-old", created_at=T0))
        repo.add_tender(new_tender("T-new", created_at=T0 + timedelta(days=1)))
    with unit_of_work(engine) as session:
        assert [t.id for t in Repository(session).list_tenders()] == ["T-new", "T-old"]


def test_tender_lists_round_trip_as_json(engine: Engine, new_tender: TenderFactory) -> None:
    with unit_of_work(engine) as session:
        Repository(session).add_tender(
            new_tender("T-1", oaep_hashes=["sha256", "sha384"], count_visible=True)
        )
    with unit_of_work(engine) as session:
        tender = Repository(session).get_tender("T-1")
    assert tender.oaep_hashes == ["sha256", "sha384"]
    assert tender.count_visible is True
    assert tender.state is TenderState.ACCEPTING


def test_mark_opened_moves_the_tender_to_opened_once(tender_engine: Engine) -> None:
    at = T0 + timedelta(days=15)
    with unit_of_work(tender_engine) as session:
        Repository(session).mark_opened("T-1", at)
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        tender = repo.get_tender("T-1")
        assert (tender.state, tender.opened_at) == (TenderState.OPENED, at)
        with pytest.raises(AlreadyOpened):
            repo.mark_opened("T-1", at)


# --- bids ---------------------------------------------------------------------------------
def test_a_resent_envelope_finds_its_original_bid(tender_engine: Engine) -> None:
    with unit_of_work(tender_engine) as session:
        Repository(session).add_bid(_bid("bid-1", 7))
    digest = hashlib.sha256(b"bid-1").hexdigest()
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        found = repo.find_bid("T-1", TAG_A, digest)
        assert found is not None
        assert (found.id, found.receipt_der) == ("bid-1", b"\x30\x03\x02\x01\x01")
        assert repo.find_bid("T-1", TAG_B, digest) is None


def test_one_bidder_cannot_store_the_same_envelope_twice(tender_engine: Engine) -> None:
    digest = hashlib.sha256(b"bid-1").hexdigest()
    with unit_of_work(tender_engine) as session:
        Repository(session).add_bid(_bid("bid-1", 1))
    with pytest.raises(IntegrityError), unit_of_work(tender_engine) as session:
        Repository(session).add_bid(_bid("bid-2", 2, envelope_sha256=digest))


def test_a_bid_for_an_unknown_tender_is_refused(engine: Engine) -> None:
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        Repository(session).add_bid(_bid("bid-1", 1, tender_id="T-missing"))


def test_current_bids_exclude_replaced_and_withdrawn_and_follow_the_log(
    tender_engine: Engine,
) -> None:
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        repo.add_bid(_bid("bid-c", 30, tag=TAG_B))
        repo.add_bid(_bid("bid-a", 10, status=BidStatus.REPLACED))
        repo.add_bid(_bid("bid-b", 20))
        repo.add_bid(_bid("bid-w", 40, tag="tag-w", status=BidStatus.WITHDRAWN))
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        assert [b.id for b in repo.current_bids("T-1")] == ["bid-b", "bid-c"]
        assert repo.count_current_bids("T-1") == 2
        assert [b.id for b in repo.all_bids("T-1")] == ["bid-a", "bid-b", "bid-c", "bid-w"]
        assert repo.count_current_bids("T-other") == 0


def test_getting_an_unknown_bid_raises_BID_NOT_FOUND(engine: Engine) -> None:
    with pytest.raises(BidNotFound), unit_of_work(engine) as session:
        Repository(session).get_bid("bid-nope")


def test_a_withdrawal_is_stored_against_its_bid(tender_engine: Engine) -> None:
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        bid = repo.add_bid(_bid("bid-1", 1))
        repo.add_withdrawal(
            Withdrawal(
                id="wd-1",
                tender_id="T-1",
                bid_id="bid-1",
                bidder_tag=TAG_A,
                sealed_statement_blob="c" * 64,
                signing_time=T0 + timedelta(hours=1),
                received_at=T0 + timedelta(hours=1),
                log_sequence=2,
                receipt_der=b"\x30\x00",
            )
        )
        bid.status = BidStatus.WITHDRAWN
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        assert [w.bid_id for w in repo.withdrawals("T-1")] == ["bid-1"]
        assert repo.get_bid("bid-1").status is BidStatus.WITHDRAWN
        assert repo.count_current_bids("T-1") == 0


# --- key uses and opening records ---------------------------------------------------------
def test_key_uses_are_kept_in_the_order_they_were_recorded(tender_engine: Engine) -> None:
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        repo.add_bid(_bid("bid-1", 1))
        repo.add_bid(_bid("bid-2", 2, tag=TAG_B))
        for bid_id in ("bid-2", "bid-1"):
            use = repo.add_key_use(
                KeyUse(tender_id="T-1", bid_id=bid_id, operation=KeyOperation.DECRYPT_KEY, at=T0)
            )
            assert use.id is not None
    with unit_of_work(tender_engine) as session:
        uses = Repository(session).key_uses("T-1")
    assert [u.bid_id for u in uses] == ["bid-2", "bid-1"]
    assert uses[0].id < uses[1].id


def test_the_clear_signer_of_a_bid_is_stored_only_once_its_tender_is_opened(
    tender_engine: Engine,
) -> None:
    signature_blob = hashlib.sha256(b"outer signature").hexdigest()
    with unit_of_work(tender_engine) as session:
        bid = Repository(session).add_bid(_bid("bid-1", 1))
        assert (bid.outer_signature_blob, bid.validation_json) == (None, None)  # sealed
    with pytest.raises(StorageError), unit_of_work(tender_engine) as session:
        Repository(session).store_opened_signer("bid-1", signature_blob, '{"chain":[]}')
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        assert repo.get_bid("bid-1").outer_signature_blob is None
        repo.mark_opened("T-1", T0 + timedelta(days=1))
        repo.store_opened_signer("bid-1", signature_blob, '{"chain":[]}')
    with unit_of_work(tender_engine) as session:
        bid = Repository(session).get_bid("bid-1")
        assert (bid.outer_signature_blob, bid.validation_json) == (signature_blob, '{"chain":[]}')


def test_an_opening_record_is_saved_once_and_read_back(tender_engine: Engine) -> None:
    record = OpeningRecord(
        tender_id="T-1", created_at=T0, record_json='{"bids":[]}', record_sha256="d" * 64
    )
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        with pytest.raises(RecordNotFound):
            repo.get_record("T-1")
        repo.save_record(record)
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        assert repo.get_record("T-1").record_json == '{"bids":[]}'
        with pytest.raises(AlreadyOpened):
            repo.save_record(
                OpeningRecord(
                    tender_id="T-1", created_at=T0, record_json="{}", record_sha256="e" * 64
                )
            )


# --- bidder slots -------------------------------------------------------------------------
def test_lock_or_create_slot_creates_an_empty_slot_once(tender_engine: Engine) -> None:
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        assert repo.lock_slot("T-1", TAG_A) is None
        slot = repo.lock_or_create_slot("T-1", TAG_A)
        assert (slot.current_bid_id, slot.last_signing_time) == (None, None)
        slot.last_signing_time = T0
    with unit_of_work(tender_engine) as session:
        slot = Repository(session).lock_or_create_slot("T-1", TAG_A)
        assert slot.last_signing_time == T0
        assert session.scalar(select(func.count()).select_from(BidderSlot)) == 1


def test_a_slot_points_at_the_current_bid(tender_engine: Engine) -> None:
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        slot = repo.lock_or_create_slot("T-1", TAG_A)
        bid = repo.add_bid(_bid("bid-1", 1))
        slot.current_bid_id = bid.id
        slot.last_signing_time = bid.signing_time
    with unit_of_work(tender_engine) as session:
        slot_after = Repository(session).lock_slot("T-1", TAG_A)
        assert slot_after is not None
        assert slot_after.current_bid_id == "bid-1"


def test_adding_a_slot_that_exists_raises_a_retryable_error_and_keeps_the_session(
    tender_engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(tender_engine) as session:
        Repository(session).add_slot(BidderSlot(tender_id="T-1", bidder_tag=TAG_A))
    with unit_of_work(tender_engine) as session:
        repo = Repository(session)
        with pytest.raises(StorageError, match="retry"):
            repo.add_slot(BidderSlot(tender_id="T-1", bidder_tag=TAG_A, last_signing_time=T0))
        repo.add_tender(new_tender("T-2"))
    with unit_of_work(tender_engine) as session:
        assert Repository(session).get_tender("T-2").id == "T-2"


def test_concurrent_read_modify_write_of_a_slot_loses_no_update(tender_engine: Engine) -> None:
    """Each worker raises the high-water mark by one second under the slot lock; with the
    lock (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite) none is lost."""
    workers, rounds = 6, 5
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                with unit_of_work(tender_engine) as session:
                    slot = Repository(session).lock_or_create_slot("T-1", TAG_A)
                    base = slot.last_signing_time or T0
                    slot.last_signing_time = base + timedelta(seconds=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with unit_of_work(tender_engine) as session:
        slot = Repository(session).lock_slot("T-1", TAG_A)
    assert slot is not None
    assert slot.last_signing_time == T0 + timedelta(seconds=workers * rounds)


# --- PostgreSQL row locks -----------------------------------------------------------------
def _wait_until_blocked_on_a_lock(engine: Engine, pid: int) -> None:
    """Poll until backend ``pid`` waits for a lock (bounded, so a bug fails the test)."""
    event = threading.Event()
    for _ in range(400):
        with engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE pid = :pid AND wait_event_type = 'Lock'"
                ),
                {"pid": pid},
            )
        if waiting:
            return
        event.wait(0.05)
    raise AssertionError(f"backend {pid} never waited for the lock")


@pytest.mark.postgres
def test_a_locked_slot_makes_a_second_submission_wait_and_see_the_first_ones_write(
    pg_engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(pg_engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
        Repository(session).lock_or_create_slot("T-1", TAG_A).last_signing_time = T0
    second_pid: list[int] = []
    seen: list[datetime | None] = []
    pid_known = threading.Event()

    def second_submission() -> None:
        with unit_of_work(pg_engine) as session:
            second_pid.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
            pid_known.set()
            slot = Repository(session).lock_slot("T-1", TAG_A)
            seen.append(slot.last_signing_time if slot else None)

    with unit_of_work(pg_engine) as session:
        slot = Repository(session).lock_slot("T-1", TAG_A)
        assert slot is not None
        other = threading.Thread(target=second_submission)
        other.start()
        assert pid_known.wait(30)
        _wait_until_blocked_on_a_lock(pg_engine, second_pid[0])
        assert seen == []  # still waiting while the first holds the lock
        slot.last_signing_time = T0 + timedelta(minutes=5)
    other.join()
    assert seen == [T0 + timedelta(minutes=5)]


@pytest.mark.postgres
def test_two_submissions_creating_one_slot_at_once_both_end_with_the_same_slot(
    pg_engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(pg_engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
    second_pid: list[int] = []
    seen: list[datetime | None] = []
    pid_known = threading.Event()

    def second_submission() -> None:
        with unit_of_work(pg_engine) as session:
            second_pid.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
            pid_known.set()
            seen.append(Repository(session).lock_or_create_slot("T-1", TAG_A).last_signing_time)

    with unit_of_work(pg_engine) as session:
        Repository(session).lock_or_create_slot("T-1", TAG_A).last_signing_time = T0
        other = threading.Thread(target=second_submission)
        other.start()
        assert pid_known.wait(30)
        _wait_until_blocked_on_a_lock(pg_engine, second_pid[0])
    other.join()
    assert seen == [T0]
    with unit_of_work(pg_engine) as session:
        assert session.scalar(select(func.count()).select_from(BidderSlot)) == 1
