"""Signer-validation benchmark: how long ``ca_bridge.validation.validate_signer`` takes for
a good bidder of the two-CA test PKI, with revocation information from the trust store
only (the no-network baseline), with a cold revocation cache (a new ``RevocationSource``
per validation: every CRL / OCSP response fetched) and with a warm one (one shared
``RevocationSource``, as the service keeps per process).

The PKI is tests/ca_bridge/pki/two-ca.yml, built in this process by the test fixtures'
own code (certomancer's animator on 127.0.0.1 in a thread), so the "network" is loopback
and the responders' work (certomancer signing a CRL or an OCSP response per request)
runs in this process too. Nothing here goes through gRPC, the token or the database.

Run: ``python -m bench.validation [--runs N]`` from the repository root.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from ca_bridge.fetching import HttpFetcher
from ca_bridge.revocation import STORED, RevocationEvidence, RevocationSource
from ca_bridge.trust_store import TrustStore
from ca_bridge.validation import SignerPolicy, SignerValidation, validate_signer
from tests.ca_bridge.pki.fixtures import (
    CA_A,
    CA_B,
    TENDER_SIGNING_POLICY,
    TwoCaPki,
    build_two_ca_pki,
)

DEFAULT_RUNS = 50
BIDDERS = ((f"{CA_A}/good-1", CA_A), (f"{CA_B}/good-1", CA_B))
"""CA A signs with RSA-2048, CA B with ECDSA P-256 (both bidders' own keys are P-256).
Each bidder's certificate names its CA's OCSP responder and CRL; the intermediate's
names the root's CRL."""
CRL_REPOS = {CA_A: ("a-root", "a-interm"), CA_B: ("b-root", "b-interm")}
POLICY = SignerPolicy(revocation="require", certificate_policies=frozenset({TENDER_SIGNING_POLICY}))


class _TimedFetcher(HttpFetcher):
    """The service's fetcher, adding up the wall time spent in HTTP requests (the
    loopback responders' work included), so the cold case can be split."""

    def __init__(self) -> None:
        super().__init__()
        self.spent = 0.0

    def get(self, url: str, deadline: float) -> bytes:
        start = time.perf_counter()
        try:
            return super().get(url, deadline)
        finally:
            self.spent += time.perf_counter() - start

    def post(self, url: str, body: bytes, content_type: str, deadline: float) -> bytes:
        start = time.perf_counter()
        try:
            return super().post(url, body, content_type, deadline)
        finally:
            self.spent += time.perf_counter() - start


@dataclass(frozen=True)
class Result:
    bidder: str
    case: str
    seconds: tuple[float, ...]
    http_seconds: tuple[float, ...]
    requests: int
    evidence: str

    def row(self) -> str:
        ms = sorted(s * 1000 for s in self.seconds)
        p90 = ms[math.ceil(0.9 * len(ms)) - 1]
        http = median(self.http_seconds) * 1000
        per_run = self.requests / len(ms)
        return (
            f"{self.bidder:<12} {self.case:<22} {median(ms):>9.1f} {p90:>7.1f} {ms[0]:>7.1f}"
            f" {http:>8.1f} {self.requests:>8} {per_run:>7.1f}  {self.evidence}"
        )


HEADER = (
    f"{'bidder':<12} {'case':<22} {'median ms':>9} {'p90 ms':>7} {'min ms':>7}"
    f" {'http ms':>8} {'requests':>8} {'per run':>7}  evidence per validation"
)


def _evidence(records: Sequence[RevocationEvidence]) -> str:
    return "+".join(("stored-" + r.kind) if r.source == STORED else r.kind for r in records)


def measure_bidder(pki: TwoCaPki, name: str, ca_id: str, runs: int) -> list[Result]:
    """The three cases for one good bidder, each over ``runs`` validations."""
    cert = pki.cert(name)
    root_repo, interm_repo = CRL_REPOS[ca_id]
    crls = (pki.crl(ca_id, root_repo), pki.crl(ca_id, interm_repo))
    with_crls = TrustStore(cas={ca_id: pki.material(ca_id, crls=crls)})
    without_crls = TrustStore(cas={ca_id: pki.material(ca_id)})

    def validate(store: TrustStore, source: RevocationSource | None) -> SignerValidation:
        return validate_signer(
            cert, [], datetime.now(UTC), store, [ca_id], POLICY, revocation=source
        )

    def timed(
        case: str, store: TrustStore, source: Callable[[], RevocationSource | None]
    ) -> Result:
        before = sum(pki.server.requests.values())
        seconds: list[float] = []
        http: list[float] = []
        result = None
        for _ in range(runs):
            chosen = source()
            spent_before = _spent(chosen)
            start = time.perf_counter()
            result = validate(store, chosen)
            seconds.append(time.perf_counter() - start)
            http.append(_spent(chosen) - spent_before)
        assert result is not None
        requests = sum(pki.server.requests.values()) - before
        evidence = _evidence(result.revocation_records)
        return Result(name, case, tuple(seconds), tuple(http), requests, evidence)

    shared = RevocationSource(fetcher=_TimedFetcher())
    # Untimed: imports and certvalidator's first-use work, and filling the shared cache.
    validate(with_crls, None)
    validate(without_crls, shared)
    return [
        timed("a trust-store CRLs", with_crls, lambda: None),
        timed(
            "b cold cache (fetch)", without_crls, lambda: RevocationSource(fetcher=_TimedFetcher())
        ),
        timed("c warm cache", without_crls, lambda: shared),
    ]


def _spent(source: RevocationSource | None) -> float:
    fetcher = None if source is None else source.fetcher
    return fetcher.spent if isinstance(fetcher, _TimedFetcher) else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.validation",
        description="validate_signer time: trust-store CRLs, cold and warm revocation cache",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"validations per case (default {DEFAULT_RUNS})",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        running = build_two_ca_pki(Path(tmp))
        pki = next(running)
        try:
            print(f"two-CA PKI animator at {pki.server.base_url}; {args.runs} runs per case")
            print(HEADER)
            for name, ca_id in BIDDERS:
                for result in measure_bidder(pki, name, ca_id, args.runs):
                    print(result.row(), flush=True)
        finally:
            running.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
