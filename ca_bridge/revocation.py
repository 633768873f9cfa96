"""Revocation information for a validation path: which CRLs and OCSP responses cover it,
fetched from the certificates' CRL distribution points and OCSP (AIA) URLs, cached with
their validity, and the evidence kept with a decision (ADR 0009).

It owns *finding and keeping* revocation data. It never decides on it: the CRLs and OCSP
responses it returns are handed to pyhanko-certvalidator, which checks signatures,
responder authority, freshness and status (validation.py). That split keeps
certvalidator offline, so time-outs, caching and the circuit breaker are ours.

A cache entry is served while the validation time lies in [thisUpdate - tolerance,
nextUpdate] and the entry is younger than ``max_cache_seconds`` (a bound on what a
forged or mis-issued response fetched over plain HTTP can cost). A fetched CRL replaces
the cached one only if it is newer (thisUpdate, then CRL number): a stale mirror cannot
roll the cache back.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from ca_bridge.errors import CertificateMalformed
from ca_bridge.fetching import FetchFailed, FetchLimits, HttpFetcher

EvidenceKind = Literal["crl", "delta-crl", "ocsp"]
STORED = "trust-store"
"""``RevocationEvidence.source`` of a CRL that came from the trust store."""
FETCHED_CLOCK_TOLERANCE = timedelta(seconds=60)


@dataclass(frozen=True)
class RevocationEvidence:
    """One CRL or OCSP response (DER) used for a decision, and where it came from."""

    kind: EvidenceKind
    der: bytes
    source: str
    """The URL it was fetched from, or ``"trust-store"``."""
    this_update: datetime
    next_update: datetime | None

    @classmethod
    def from_der(cls, der: bytes, source: str = STORED) -> RevocationEvidence:
        """Parse stored evidence back (a CRL or an OCSP response, told apart by shape)."""
        try:
            return _crl_evidence(der, source)
        except (ValueError, TypeError, KeyError):
            pass
        try:
            return _ocsp_evidence(der, source, None)
        except (ValueError, TypeError, KeyError) as exc:
            raise CertificateMalformed(
                "stored revocation evidence is neither a CRL nor an OCSP response"
            ) from exc

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def covers(self, cert: asn1_x509.Certificate) -> bool:
        """Whether this is about ``cert``: a CRL by its issuer's name (a delta CRL too),
        an OCSP response by serial number and issuer name hash."""
        if self.kind != "ocsp":
            return _crl_issuer_matches(self.der, cert)
        response = asn1_ocsp.OCSPResponse.load(self.der)
        name_hash = hashlib.sha1(cert.issuer.dump(), usedforsecurity=False).digest()
        for single in response.basic_ocsp_response["tbs_response_data"]["responses"]:
            cert_id = single["cert_id"]
            if (
                cert_id["serial_number"].native == cert.serial_number
                and cert_id["hash_algorithm"]["algorithm"].native == "sha1"
                and cert_id["issuer_name_hash"].native == name_hash
            ):
                return True
        return False

    def current_at(self, at: datetime, tolerance: timedelta) -> bool:
        if self.this_update > at + tolerance:
            return False
        return self.next_update is None or at <= self.next_update + tolerance


@dataclass(frozen=True)
class RevocationConfig:
    """The revocation limits, in one place (configuration, not code)."""

    prefer: Literal["ocsp", "crl"] = "ocsp"
    """Which source is asked first when a certificate names both; the other is the
    fallback when the first cannot be fetched."""
    total_timeout_seconds: float = 5.0
    """Longest all fetches of one validation may take together."""
    fetch: FetchLimits = field(default_factory=FetchLimits)
    clock_tolerance: timedelta = FETCHED_CLOCK_TOLERANCE
    """How far a CRL's or OCSP response's thisUpdate may lie after the validation time
    (it is fetched just after the service read its clock; responders' clocks drift)."""
    max_cache_seconds: float = 3600.0
    """No cached item is served longer than this after it was fetched."""
    max_cache_entries: int = 4096
    fetch_delta_crls: bool = True

    def __post_init__(self) -> None:
        if self.prefer not in ("ocsp", "crl"):
            raise ValueError("prefer must be 'ocsp' or 'crl'")
        if self.total_timeout_seconds <= 0:
            raise ValueError("total_timeout_seconds must be positive")
        if self.max_cache_entries < 1:
            raise ValueError("max_cache_entries must be at least 1")


@dataclass(frozen=True)
class Collected:
    """What ``RevocationSource.collect`` found for one path."""

    evidence: tuple[RevocationEvidence, ...]
    problems: tuple[str, ...]
    """Per certificate, why no fresh information could be had (no subject names)."""
    fetched: int
    """How many HTTP requests were made (0 when everything came from the cache)."""


@dataclass
class _Entry:
    evidence: RevocationEvidence
    fetched_at: float


class RevocationSource:
    """Fetches and caches CRLs and OCSP responses. Thread-safe; share one per process."""

    def __init__(
        self, config: RevocationConfig | None = None, *, fetcher: HttpFetcher | None = None
    ) -> None:
        self.config = config or RevocationConfig()
        self.fetcher = fetcher or HttpFetcher(self.config.fetch)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def collect(
        self,
        path: Sequence[asn1_x509.Certificate],
        at: datetime,
        stored_crls: Sequence[bytes] = (),
    ) -> Collected:
        """Revocation information for every certificate of ``path`` (trust anchor first)
        but the anchor. A current stored CRL for a certificate's issuer means nothing is
        fetched for that certificate."""
        deadline = self.fetcher.now() + self.config.total_timeout_seconds
        stored = [_crl_evidence(der, STORED) for der in stored_crls]
        evidence: list[RevocationEvidence] = []
        problems: list[str] = []
        fetched = 0
        for position in range(1, len(path)):
            cert, issuer = path[position], path[position - 1]
            label = (
                "the signer's certificate"
                if position == len(path) - 1
                else (f"CA certificate {position} of the chain")
            )
            covering = [
                e
                for e in stored
                if _crl_issuer_matches(e.der, cert)
                and e.current_at(at, self.config.clock_tolerance)
            ]
            if covering:
                evidence.extend(covering)
                continue
            found, count, why = self._for_certificate(cert, issuer, at, deadline)
            fetched += count
            if found:
                evidence.extend(found)
            else:
                problems.append(f"{label}: {why}")
        unique: dict[bytes, RevocationEvidence] = {}
        for item in evidence:
            unique.setdefault(item.der, item)
        return Collected(tuple(unique.values()), tuple(problems), fetched)

    def forget(self, evidence: Sequence[RevocationEvidence]) -> None:
        """Drop these items from the cache (certvalidator could not use them)."""
        with self._lock:
            for key in [k for k, e in self._cache.items() if e.evidence in evidence]:
                del self._cache[key]

    def _for_certificate(
        self,
        cert: asn1_x509.Certificate,
        issuer: asn1_x509.Certificate,
        at: datetime,
        deadline: float,
    ) -> tuple[list[RevocationEvidence], int, str]:
        ocsp_urls = [u for u in cert.ocsp_urls if u.startswith(("http://", "https://"))]
        crl_urls = [
            dp.url
            for dp in (cert.crl_distribution_points or [])
            if dp.url and dp.url.startswith(("http://", "https://"))
        ]
        if not ocsp_urls and not crl_urls:
            return [], 0, "names no CRL distribution point or OCSP responder over HTTP"
        order = ["ocsp", "crl"] if self.config.prefer == "ocsp" else ["crl", "ocsp"]
        reasons: list[str] = []
        requests = 0
        for kind in order:
            urls = ocsp_urls if kind == "ocsp" else crl_urls
            for url in urls:
                try:
                    if kind == "ocsp":
                        item, n = self._ocsp(url, cert, issuer, at, deadline)
                        return [item], requests + n, ""
                    base, n = self._crl(url, at, deadline)
                    requests += n
                    found = [base]
                    if self.config.fetch_delta_crls:
                        delta, n = self._delta_for(cert, base, at, deadline)
                        requests += n
                        found.extend(delta)
                    return found, requests, ""
                except FetchFailed as exc:
                    requests += 0 if exc.reason in ("circuit-open", "bad-url") else 1
                    reasons.append(f"{kind} {exc.reason}{': ' + exc.detail if exc.detail else ''}")
                except _Unusable as exc:
                    requests += 1
                    reasons.append(f"{kind} {exc}")
        return [], requests, "; ".join(reasons)

    def _cached(self, key: str, at: datetime) -> RevocationEvidence | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            young = self.fetcher.now() - entry.fetched_at <= self.config.max_cache_seconds
            if young and entry.evidence.current_at(at, self.config.clock_tolerance):
                self._cache.move_to_end(key)
                return entry.evidence
            return None

    def _store(self, key: str, evidence: RevocationEvidence) -> RevocationEvidence:
        """Keep ``evidence`` unless the cache already holds a newer item for the key;
        return whichever is kept."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and _newer(entry.evidence, evidence):
                return entry.evidence
            self._cache[key] = _Entry(evidence, self.fetcher.now())
            self._cache.move_to_end(key)
            while len(self._cache) > self.config.max_cache_entries:
                self._cache.popitem(last=False)
            return evidence

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _crl(self, url: str, at: datetime, deadline: float) -> tuple[RevocationEvidence, int]:
        key = "crl " + url
        hit = self._cached(key, at)
        if hit is not None:
            return hit, 0
        # One fetch per URL at a time: concurrent submissions wait and reuse it.
        with self._key_lock(key):
            hit = self._cached(key, at)
            if hit is not None:
                return hit, 0
            der = self.fetcher.get(url, deadline)
            try:
                fetched = _crl_evidence(_unarmor(der, "X509 CRL"), url)
            except (ValueError, TypeError, KeyError) as exc:
                raise _Unusable("the server's answer is not a CRL") from exc
            kept = self._store(key, fetched)
        if not kept.current_at(at, self.config.clock_tolerance):
            raise _Unusable("the CRL is not current (past its nextUpdate)")
        return kept, 1

    def _delta_for(
        self,
        cert: asn1_x509.Certificate,
        base: RevocationEvidence,
        at: datetime,
        deadline: float,
    ) -> tuple[list[RevocationEvidence], int]:
        """Best effort: a delta CRL named by the certificate or the base CRL. A failure
        is not fatal; the base CRL alone is still a valid answer (if it is current)."""
        urls = [dp.url for dp in cert.delta_crl_distribution_points if dp.url]
        base_crl = asn1_crl.CertificateList.load(base.der)
        for dp in base_crl.delta_crl_distribution_points:
            if dp.url and dp.url not in urls:
                urls.append(dp.url)
        for url in urls:
            try:
                item, n = self._crl(url, at, deadline)
            except (FetchFailed, _Unusable):
                continue
            return [
                RevocationEvidence("delta-crl", item.der, url, item.this_update, item.next_update)
            ], n
        return [], 0

    def _ocsp(
        self,
        url: str,
        cert: asn1_x509.Certificate,
        issuer: asn1_x509.Certificate,
        at: datetime,
        deadline: float,
    ) -> tuple[RevocationEvidence, int]:
        cert_id = _cert_id(cert, issuer)
        key = f"ocsp {url} {cert_id.dump().hex()}"
        hit = self._cached(key, at)
        if hit is not None:
            return hit, 0
        with self._key_lock(key):
            hit = self._cached(key, at)
            if hit is not None:
                return hit, 0
            request = asn1_ocsp.OCSPRequest(
                {"tbs_request": {"request_list": [{"req_cert": cert_id}]}}
            )
            der = self.fetcher.post(url, request.dump(), "application/ocsp-request", deadline)
            try:
                fetched = _ocsp_evidence(der, url, cert_id)
            except (ValueError, TypeError, KeyError) as exc:
                raise _Unusable(f"the responder's answer is unusable ({exc})") from exc
            kept = self._store(key, fetched)
        if not kept.current_at(at, self.config.clock_tolerance):
            raise _Unusable("the OCSP response is not current")
        return kept, 1


class _Unusable(Exception):
    """Fetched, but not usable revocation information."""


def _cert_id(cert: asn1_x509.Certificate, issuer: asn1_x509.Certificate) -> asn1_ocsp.CertId:
    # SHA-1 CertIDs are what every responder answers (RFC 6960, RFC 5019); they identify,
    # they do not protect. A responder for SM2 certificates may expect SM3 (see docs).
    return asn1_ocsp.CertId(
        {
            "hash_algorithm": {"algorithm": "sha1"},
            "issuer_name_hash": hashlib.sha1(cert.issuer.dump(), usedforsecurity=False).digest(),
            "issuer_key_hash": issuer.public_key.sha1,
            "serial_number": cert.serial_number,
        }
    )


def _unarmor(data: bytes, pem_type: str) -> bytes:
    if pem.detect(data):
        object_type, _headers, der = pem.unarmor(data)
        if object_type != pem_type:
            raise ValueError(f"expected PEM {pem_type}")
        return bytes(der)
    return data


def _crl_evidence(der: bytes, source: str) -> RevocationEvidence:
    crl = asn1_crl.CertificateList.load(der, strict=True)
    tbs = crl["tbs_cert_list"]
    this_update: datetime = tbs["this_update"].native
    next_update: datetime | None = tbs["next_update"].native
    kind: EvidenceKind = "delta-crl" if crl.delta_crl_indicator_value is not None else "crl"
    return RevocationEvidence(kind, der, source, this_update, next_update)


def _ocsp_evidence(der: bytes, source: str, cert_id: asn1_ocsp.CertId | None) -> RevocationEvidence:
    response = asn1_ocsp.OCSPResponse.load(der, strict=True)
    status = response["response_status"].native
    if status != "successful":
        raise ValueError(f"OCSP status {status}")
    basic = response.basic_ocsp_response
    if basic is None:
        raise ValueError("not a basic OCSP response")
    singles = basic["tbs_response_data"]["responses"]
    for single in singles:
        if cert_id is None or _same_cert_id(single["cert_id"], cert_id):
            return RevocationEvidence(
                "ocsp",
                der,
                source,
                single["this_update"].native,
                single["next_update"].native,
            )
    raise ValueError("the response does not cover the certificate asked about")


def _same_cert_id(a: asn1_ocsp.CertId, b: asn1_ocsp.CertId) -> bool:
    return bool(
        a["serial_number"].native == b["serial_number"].native
        and a["issuer_name_hash"].native == b["issuer_name_hash"].native
        and a["issuer_key_hash"].native == b["issuer_key_hash"].native
    )


def _crl_issuer_matches(der: bytes, cert: asn1_x509.Certificate) -> bool:
    crl = asn1_crl.CertificateList.load(der)
    return bool(crl["tbs_cert_list"]["issuer"] == cert.issuer)


def _newer(held: RevocationEvidence, candidate: RevocationEvidence) -> bool:
    """Whether ``held`` is strictly newer than ``candidate``."""
    if held.this_update != candidate.this_update:
        return held.this_update > candidate.this_update
    if held.kind != "ocsp" and candidate.kind != "ocsp":
        held_number = asn1_crl.CertificateList.load(held.der).crl_number_value
        new_number = asn1_crl.CertificateList.load(candidate.der).crl_number_value
        if held_number is not None and new_number is not None:
            return bool(held_number.native > new_number.native)
    return False
