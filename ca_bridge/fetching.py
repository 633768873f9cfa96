"""HTTP fetching of revocation information: bounded time, bounded size, and a circuit
breaker per responder, so that one dead CA server cannot stall submissions.

It owns the wire (http.client over http:// and https://) and the breaker state. It
never interprets what it fetched (revocation.py does) and never raises a
``CaBridgeError``: a failed fetch is a ``FetchFailed``, which the caller turns into a
warning or ``RevocationUnavailable`` according to the tender's revocation policy.

Time-outs: every request gets ``min(request_timeout, time left until the caller's
deadline)``, re-applied before each socket operation, so a server that answers one byte
at a time cannot stretch a request past its deadline either. Redirects are not followed
(CRL and OCSP URLs are published in certificates and should be final).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FailureReason = Literal[
    "circuit-open", "timeout", "connection", "http-status", "too-large", "bad-url"
]

_USER_AGENT = "sealed-bid-ca-bridge/1"
_CHUNK = 64 * 1024


class FetchFailed(Exception):
    """A request failed or was not attempted (circuit open). Internal to ca_bridge."""

    def __init__(self, url: str, reason: FailureReason, detail: str = "") -> None:
        super().__init__(f"{url}: {reason}{': ' + detail if detail else ''}")
        self.url = url
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FetchLimits:
    request_timeout_seconds: float = 3.0
    """Longest a single request may take (connect + send + receive)."""
    max_response_bytes: int = 32 * 1024 * 1024
    """Largest CRL or OCSP response accepted (large CAs publish CRLs of tens of MB)."""
    failure_threshold: int = 3
    """Consecutive failures after which a responder's circuit opens."""
    cool_down_seconds: float = 60.0
    """How long an open circuit fails fast before one trial request is let through."""

    def __post_init__(self) -> None:
        if self.request_timeout_seconds <= 0:
            raise ValueError("request_timeout_seconds must be positive")
        if self.max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.cool_down_seconds < 0:
            raise ValueError("cool_down_seconds must not be negative")


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float | None = None
    trial_in_flight: bool = False


class HttpFetcher:
    """Thread-safe; one instance per process, shared by every validation.

    Breakers are per responder origin (scheme://host:port): a CA's CRL and OCSP
    services usually share a host, and a host that is down is down for both.
    """

    def __init__(
        self, limits: FetchLimits | None = None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or FetchLimits()
        self._monotonic = monotonic
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def get(self, url: str, deadline: float) -> bytes:
        return self._request("GET", url, None, None, deadline)

    def post(self, url: str, body: bytes, content_type: str, deadline: float) -> bytes:
        return self._request("POST", url, body, content_type, deadline)

    def circuit_open(self, url: str) -> bool:
        """Whether requests to this URL's responder currently fail fast."""
        with self._lock:
            circuit = self._circuits.get(_origin(url))
            return bool(
                circuit is not None
                and circuit.open_until is not None
                and self._monotonic() < circuit.open_until
            )

    def now(self) -> float:
        return self._monotonic()

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        content_type: str | None,
        deadline: float,
    ) -> bytes:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchFailed(url, "bad-url", "only http and https URLs are fetched")
        origin = _origin(url)
        if deadline <= self._monotonic():
            # The validation's time is used up: not this responder's fault, not counted.
            raise FetchFailed(url, "timeout", "no time left for this request")
        self._admit(url, origin)
        try:
            data = self._exchange(parts, method, url, body, content_type, deadline)
        except FetchFailed:
            self._record(origin, ok=False)
            raise
        self._record(origin, ok=True)
        return data

    def _admit(self, url: str, origin: str) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(origin, _Circuit())
            if circuit.open_until is None:
                return
            if self._monotonic() < circuit.open_until or circuit.trial_in_flight:
                raise FetchFailed(
                    url,
                    "circuit-open",
                    f"{circuit.failures} consecutive failures; not retried until the "
                    "cool-down has passed",
                )
            # Half-open: exactly one trial request; the others keep failing fast.
            circuit.trial_in_flight = True

    def _record(self, origin: str, *, ok: bool) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(origin, _Circuit())
            circuit.trial_in_flight = False
            if ok:
                circuit.failures = 0
                circuit.open_until = None
                return
            circuit.failures += 1
            if circuit.failures >= self.limits.failure_threshold:
                circuit.open_until = self._monotonic() + self.limits.cool_down_seconds

    def _exchange(
        self,
        parts: urllib.parse.SplitResult,
        method: str,
        url: str,
        body: bytes | None,
        content_type: str | None,
        deadline: float,
    ) -> bytes:
        def remaining() -> float:
            left = min(deadline - self._monotonic(), self.limits.request_timeout_seconds)
            if left <= 0:
                raise FetchFailed(url, "timeout", "time-out reached")
            return left

        end = min(deadline, self._monotonic() + self.limits.request_timeout_seconds)
        deadline = end
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.hostname or "", parts.port, timeout=remaining())
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"User-Agent": _USER_AGENT, "Connection": "close"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, path, body=body, headers=headers)
            if connection.sock is not None:
                connection.sock.settimeout(remaining())
            response = connection.getresponse()
            if response.status != 200:
                raise FetchFailed(url, "http-status", f"HTTP {response.status}")
            declared = response.getheader("Content-Length")
            limit = self.limits.max_response_bytes
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FetchFailed(url, "too-large", f"{declared} bytes")
            chunks: list[bytes] = []
            size = 0
            while True:
                if connection.sock is not None:
                    connection.sock.settimeout(remaining())
                chunk = response.read1(_CHUNK) if hasattr(response, "read1") else b""
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise FetchFailed(url, "too-large", f"more than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except TimeoutError as exc:
            raise FetchFailed(url, "timeout", "no answer within the time-out") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed(url, "connection", type(exc).__name__) from exc
        finally:
            connection.close()


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
