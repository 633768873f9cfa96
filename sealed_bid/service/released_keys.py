"""The content keys bidders have released for their own bids (bidder participation), held
in this process's memory only until their tender's opening: never written to the
database, a file or a log, never shown in a ``repr``. A service restart forgets them and
the opening falls back to the tender key.

It does not decide who may release a key or when (``service.key_release`` does), and it
never decrypts anything.
"""

from __future__ import annotations

import threading


class ReleasedKeys:
    """(tender id, bid id) -> the content key its bidder released, per tender."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, bytes]] = {}

    def hold(self, tender_id: str, bid_id: str, content_key: bytes) -> bool:
        """Hold ``content_key`` for the bid, replacing an earlier release; return whether
        one was replaced."""
        with self._lock:
            held = self._keys.setdefault(tender_id, {})
            replaced = bid_id in held
            held[bid_id] = bytes(content_key)
            return replaced

    def get(self, tender_id: str, bid_id: str) -> bytes | None:
        with self._lock:
            return self._keys.get(tender_id, {}).get(bid_id)

    def count(self, tender_id: str) -> int:
        with self._lock:
            return len(self._keys.get(tender_id, {}))

    def forget(self, tender_id: str) -> None:
        with self._lock:
            self._keys.pop(tender_id, None)

    def __repr__(self) -> str:
        with self._lock:
            return f"ReleasedKeys(<{sum(len(k) for k in self._keys.values())} keys withheld>)"
