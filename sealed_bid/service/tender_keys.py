"""The only way to a tender's private key, and the only caller of
``Token.decrypt_tender_key``. A ``TenderKeyAccess`` cannot be made before the tender's
opening time, so no code path — service, CLI or a direct call of this layer — can decrypt
early. Each use is journalled (audit entry + key-use row, committed) before the key is used.
"""

from __future__ import annotations

from datetime import datetime

from sealed_bid.domain.clock import Clock
from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import NotYetOpen
from sealed_bid.hsm.token import Token


class TenderKeyAccess:
    def __init__(self, token: Token, tender_id: TenderId, opening_time: datetime, clock: Clock):
        now = clock.now()
        if now < opening_time:
            raise NotYetOpen(
                f"tender {tender_id} opens at {opening_time.isoformat()}; it is now"
                f" {now.isoformat()}",
                tender_id=tender_id,
            )
        self._token = token
        self._tender_id = tender_id
        self.authorised_at = now

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        """KeyTransport: recover one content-encryption key on the token."""
        return self._token.decrypt_tender_key(self._tender_id, encrypted_key, oaep_hash)
