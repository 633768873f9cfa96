"""An RFC 3161 client over HTTP (RFC 3161 3.4): bounded time, bounded size, then the
offline checks of ``rfc3161``.

It owns the wire: one POST of application/timestamp-query per stamp, a fresh random
64-bit nonce each time, and the mapping of transport failures to
``TimestampUnavailable`` (time-out, refused connection, HTTP status other than 200,
wrong content type, reply too large). An answer that arrives but does not verify is
``TimestampInvalid``. It never retries and never falls back to the local clock: when the
TSA is down the caller decides (ADR 0014). Redirects are not followed.

It uses http.client (the layer urllib.request is built on) rather than urllib.request:
urllib would follow redirects, and its time-out applies per socket operation, so a TSA
dripping one byte at a time could hold a caller far beyond it; here one deadline covers
the whole exchange. It holds no mutable state: one instance serves many threads.
"""

from __future__ import annotations

import http.client
import secrets
import ssl
import time
import urllib.parse
from collections.abc import Sequence

from sealed_bid.errors import ConfigError, TimestampUnavailable
from sealed_bid.timestamping.rfc3161 import TimestampToken, make_request, verify_response

QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
_USER_AGENT = "sealed-bid-timestamping/1"
_CHUNK = 16 * 1024


class TimestampClient:
    """Asks one TSA for tokens and verifies them against ``trust_roots_der`` (DER)."""

    def __init__(
        self,
        url: str,
        trust_roots_der: Sequence[bytes],
        *,
        timeout_seconds: float = 5.0,
        max_response_bytes: int = 64 * 1024,
        policy: str | None = None,
        intermediates_der: Sequence[bytes] = (),
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"the TSA URL must be an http:// or https:// URL, got {url!r}")
        if not trust_roots_der:
            raise ConfigError("a TSA client needs at least one trusted TSA root certificate")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")
        self.url = url
        self._parts = parts
        self._roots = tuple(trust_roots_der)
        self._intermediates = tuple(intermediates_der)
        self._timeout = timeout_seconds
        self._max_response = max_response_bytes
        self._policy = policy
        if policy is not None:
            make_request(bytes(32), 1, policy)  # refuses a malformed OID now, not per stamp

    def stamp(self, digest_sha256: bytes) -> TimestampToken:
        """A verified token over ``digest_sha256`` (SHA-256, 32 bytes) from this TSA."""
        nonce = secrets.randbelow(2**64 - 1) + 1
        request = make_request(digest_sha256, nonce, self._policy)
        reply = self._post(request)
        return verify_response(
            reply,
            digest_sha256,
            nonce,
            self._roots,
            intermediates_der=self._intermediates,
            policy=self._policy,
        )

    def _post(self, body: bytes) -> bytes:
        deadline = time.monotonic() + self._timeout

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the TSA's time-out was reached")
            return left

        parts = self._parts
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=remaining(),
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=remaining()
            )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Content-Type": QUERY_CONTENT_TYPE,
            "Accept": REPLY_CONTENT_TYPE,
            "User-Agent": _USER_AGENT,
            "Connection": "close",
        }
        try:
            connection.request("POST", path, body=body, headers=headers)
            if connection.sock is not None:
                connection.sock.settimeout(remaining())
            response = connection.getresponse()
            if response.status != 200:
                raise self._unavailable(f"HTTP {response.status} {response.reason}", "http-status")
            media_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
            if media_type.lower() != REPLY_CONTENT_TYPE:
                raise self._unavailable(
                    f"the reply's content type is {media_type!r}, not {REPLY_CONTENT_TYPE}",
                    "content-type",
                )
            declared = response.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > self._max_response:
                raise self._unavailable(f"the reply is {declared} bytes", "too-large")
            chunks: list[bytes] = []
            size = 0
            while True:
                if connection.sock is not None:
                    connection.sock.settimeout(remaining())
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self._max_response:
                    raise self._unavailable(
                        f"the reply exceeds {self._max_response} bytes", "too-large"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
        except TimeoutError:
            raise self._unavailable(f"no answer within {self._timeout:g} s", "timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable(
                f"connection failed ({type(exc).__name__})", "connection"
            ) from None
        finally:
            connection.close()

    def _unavailable(self, detail: str, reason: str) -> TimestampUnavailable:
        return TimestampUnavailable(
            f"the time-stamping authority at {self.url} did not answer usefully: {detail}; "
            "retry later",
            reason=reason,
            url=self.url,
        )
