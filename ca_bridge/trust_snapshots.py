"""The current trust snapshot for a running service, refreshed without a restart.

Owns when the service re-reads the trust store: at most every ``check_interval``
seconds it compares the trust-change log's version (its row count) with the one its
snapshot was built from and rebuilds only if something changed, so a CRL pushed, synced
or added by an operator takes effect within one interval. It must never hand out a half-built store
(snapshots are immutable values, swapped whole) and never block validation on the
database for longer than one version query per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.trust_store import TrustStore


class TrustSnapshots:
    """``current()`` returns the latest snapshot; thread-safe.

    When the store has an ``on_change`` callback, each rebuild first forwards changes
    made without one (the operator CLI) to the audit log.
    """

    def __init__(
        self,
        store: DbTrustStore,
        *,
        check_interval: float = 5.0,
        forward_unaudited: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if check_interval < 0:
            raise ValueError("check_interval must not be negative")
        self._store = store
        self._interval = check_interval
        self._forward = forward_unaudited
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = 0.0
        self._snapshot: TrustStore | None = None

    def current(self) -> TrustStore:
        with self._lock:
            now = self._monotonic()
            if self._snapshot is None or now - self._checked_at >= self._interval:
                self._refresh()
                self._checked_at = now
            assert self._snapshot is not None
            return self._snapshot

    def refresh(self) -> TrustStore:
        """Re-read now (e.g. right after this process changed the store)."""
        with self._lock:
            self._refresh()
            self._checked_at = self._monotonic()
            assert self._snapshot is not None
            return self._snapshot

    def _refresh(self) -> None:
        if self._forward:
            self._store.forward_unaudited()
        version = self._store.version()
        if version != self._version or self._snapshot is None:
            # Read the version first: a change committed in between is picked up next time.
            self._snapshot = self._store.snapshot()
            self._version = version
