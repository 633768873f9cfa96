"""Revocation over HTTP: time-outs, the circuit breaker, the cache, and offline
re-validation of stored evidence. The servers are real (tests/ca_bridge/pki); the only
thing a test controls is a clock (the CAs' clock, or the breaker's monotonic clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ca_bridge import errors
from ca_bridge.fetching import FetchLimits, HttpFetcher
from ca_bridge.revocation import RevocationConfig, RevocationEvidence, RevocationSource
from ca_bridge.validation import SignerPolicy, revalidate_offline, validate_signer
from tests.ca_bridge.pki.fixtures import (
    CA_A,
    TwoCaPki,
    shared_two_ca_pki,
)


@pytest.fixture(scope="session")
def two_ca_pki(tmp_path_factory: pytest.TempPathFactory) -> TwoCaPki:
    return shared_two_ca_pki(tmp_path_factory)


REQUIRE = SignerPolicy(revocation="require")
SOFT = SignerPolicy(revocation="soft-fail")
# Tiny time-outs against a server that would hang for ever: the test finishing proves
# the time-out was honoured (pytest-timeout is 300 s); no timing is asserted.
SHORT = RevocationConfig(total_timeout_seconds=0.5, fetch=FetchLimits(request_timeout_seconds=0.5))


@pytest.fixture
def ca_clock(two_ca_pki: TwoCaPki) -> Iterator[TwoCaPki]:
    """Lets a test set the CAs' clock; puts it back afterwards."""
    yield two_ca_pki
    two_ca_pki.server.clock = None


def test_hanging_crl_and_ocsp_server_is_REVOCATION_UNAVAILABLE_under_require(
    two_ca_pki: TwoCaPki,
) -> None:
    before = two_ca_pki.blackhole.connections

    with pytest.raises(errors.RevocationUnavailable) as caught:
        validate_signer(
            two_ca_pki.cert("ca-a/servers-hang"),
            [],
            datetime.now(UTC),
            two_ca_pki.trust_store(CA_A),
            [CA_A],
            REQUIRE,
            revocation=RevocationSource(SHORT),
        )

    assert caught.value.code == "REVOCATION_UNAVAILABLE"
    assert caught.value.grpc_status == "UNAVAILABLE"
    assert two_ca_pki.blackhole.connections > before  # it really asked, and gave up
    problems = caught.value.context["problems"]
    assert isinstance(problems, list)
    assert "timeout" in problems[0]
    assert "Hanging CA" not in str(problems)  # never names the bidder


def test_hanging_server_is_accepted_with_a_warning_under_soft_fail(
    two_ca_pki: TwoCaPki,
) -> None:
    result = validate_signer(
        two_ca_pki.cert("ca-a/servers-hang"),
        [],
        datetime.now(UTC),
        two_ca_pki.trust_store(CA_A),
        [CA_A],
        SOFT,
        revocation=RevocationSource(SHORT),
    )

    assert result.ca_id == CA_A
    assert len(result.warnings) == 1
    assert "signer's certificate" in result.warnings[0]
    assert "soft-fail" in result.warnings[0]
    # The intermediate's CRL was fetched and is the only evidence.
    assert [r.kind for r in result.revocation_records] == ["crl"]


def test_circuit_breaker_opens_after_failures_and_retries_after_the_cool_down(
    two_ca_pki: TwoCaPki,
) -> None:
    clock = [1000.0]
    limits = FetchLimits(request_timeout_seconds=0.3, failure_threshold=2, cool_down_seconds=60)
    fetcher = HttpFetcher(limits, monotonic=lambda: clock[0])
    source = RevocationSource(
        RevocationConfig(prefer="crl", total_timeout_seconds=5, fetch=limits), fetcher=fetcher
    )
    url = f"{two_ca_pki.blackhole.base_url}/ca-a/crls/a-interm-hangs/latest.crl"
    connections = two_ca_pki.blackhole.connections

    def attempt() -> str:
        with pytest.raises(errors.RevocationUnavailable) as caught:
            validate_signer(
                two_ca_pki.cert("ca-a/servers-hang"),
                [],
                datetime.now(UTC),
                two_ca_pki.trust_store(CA_A),
                [CA_A],
                REQUIRE,
                revocation=source,
            )
        return str(caught.value.context["problems"])

    first = attempt()  # CRL, then OCSP on the same host: two failures, circuit opens
    assert "timeout" in first
    assert fetcher.circuit_open(url)
    assert two_ca_pki.blackhole.connections == connections + 2

    second = attempt()  # fails fast: nothing reaches the server
    assert "circuit-open" in second
    assert two_ca_pki.blackhole.connections == connections + 2

    clock[0] += 61  # cool-down over: one trial request goes through, fails, re-opens
    third = attempt()
    assert "timeout" in third and "circuit-open" in third
    assert two_ca_pki.blackhole.connections == connections + 3
    assert fetcher.circuit_open(url)


def test_a_cache_hit_avoids_a_second_fetch(two_ca_pki: TwoCaPki) -> None:
    server = two_ca_pki.server
    source = RevocationSource()
    before = server.count("/ca-a/")

    first = validate_signer(
        two_ca_pki.cert("ca-a/good-1"),
        [],
        datetime.now(UTC),
        two_ca_pki.trust_store(CA_A),
        [CA_A],
        REQUIRE,
        revocation=source,
    )
    after_first = server.count("/ca-a/")
    second = validate_signer(
        two_ca_pki.cert("ca-a/good-1"),
        [],
        datetime.now(UTC),
        two_ca_pki.trust_store(CA_A),
        [CA_A],
        REQUIRE,
        revocation=source,
    )

    assert after_first == before + 2  # OCSP for the leaf, CRL for the intermediate
    assert server.count("/ca-a/") == after_first
    assert second.revocation_evidence == first.revocation_evidence


def test_a_newer_crl_replaces_the_cached_one_once_it_is_out_of_date(
    ca_clock: TwoCaPki,
) -> None:
    pki, server = ca_clock, ca_clock.server
    source = RevocationSource(RevocationConfig(prefer="crl"))
    day = datetime.now(UTC).replace(microsecond=0)
    trust = pki.trust_store(CA_A)

    def crl_this_update(at: datetime) -> datetime:
        result = validate_signer(
            pki.cert("ca-a/good-1"), [], at, trust, [CA_A], REQUIRE, revocation=source
        )
        (leaf_crl,) = [r for r in result.revocation_records if "a-interm" in r.source]
        return leaf_crl.this_update

    server.clock = day
    fetches = server.count("a-interm/latest")
    first = crl_this_update(day)
    assert crl_this_update(day + timedelta(minutes=5)) == first  # cached, still current
    assert server.count("a-interm/latest") == fetches + 1

    later = day + timedelta(days=2)  # past the daily CRL's nextUpdate
    server.clock = later
    second = crl_this_update(later)

    assert second > first
    assert server.count("a-interm/latest") == fetches + 2
    assert crl_this_update(later + timedelta(minutes=1)) == second  # the new one is cached


def test_stored_evidence_revalidates_offline_after_a_later_revocation(
    ca_clock: TwoCaPki,
) -> None:
    pki, server = ca_clock, ca_clock.server
    submitted = datetime(2025, 2, 1, 12, 0, tzinfo=UTC)  # the certificate was revoked 2025-03-01
    server.clock = submitted
    trust = pki.trust_store(CA_A)
    accepted = validate_signer(
        pki.cert("ca-a/revoked"),
        [],
        submitted,
        trust,
        [CA_A],
        REQUIRE,
        revocation=RevocationSource(),
    )
    server.clock = None
    requests = sum(server.requests.values())

    again = revalidate_offline(
        pki.cert("ca-a/revoked"),
        [],
        accepted.validated_at,
        trust,
        [CA_A],
        REQUIRE,
        accepted.revocation_evidence,
    )

    assert again.chain == accepted.chain
    assert again.revocation_evidence == accepted.revocation_evidence
    assert sum(server.requests.values()) == requests  # no network
    with pytest.raises(errors.SignerRevoked):  # today it is refused
        validate_signer(
            pki.cert("ca-a/revoked"),
            [],
            datetime.now(UTC),
            trust,
            [CA_A],
            REQUIRE,
            revocation=RevocationSource(),
        )


def test_offline_revalidation_without_evidence_is_REVOCATION_UNAVAILABLE(
    two_ca_pki: TwoCaPki,
) -> None:
    with pytest.raises(errors.RevocationUnavailable):
        revalidate_offline(
            two_ca_pki.cert("ca-a/good-1"),
            [],
            datetime.now(UTC),
            two_ca_pki.trust_store(CA_A),
            [CA_A],
            REQUIRE,
            [],
        )


def test_offline_revalidation_refuses_evidence_showing_the_revocation(
    two_ca_pki: TwoCaPki,
) -> None:
    crl = two_ca_pki.crl(CA_A, "a-interm")
    root_crl = two_ca_pki.crl(CA_A, "a-root")

    with pytest.raises(errors.SignerRevoked):
        revalidate_offline(
            two_ca_pki.cert("ca-a/revoked"),
            [],
            datetime.now(UTC),
            two_ca_pki.trust_store(CA_A),
            [CA_A],
            REQUIRE,
            [crl, root_crl],
        )


def test_stored_evidence_parses_back_as_crl_or_ocsp(two_ca_pki: TwoCaPki) -> None:
    result = validate_signer(
        two_ca_pki.cert("ca-a/good-1"),
        [],
        datetime.now(UTC),
        two_ca_pki.trust_store(CA_A),
        [CA_A],
        REQUIRE,
        revocation=RevocationSource(),
    )

    kinds = sorted(RevocationEvidence.from_der(der).kind for der in result.revocation_evidence)
    assert kinds == ["crl", "ocsp"]
    with pytest.raises(errors.CertificateMalformed):
        RevocationEvidence.from_der(b"\x30\x03\x02\x01\x00")


@pytest.mark.parametrize(
    "kwargs",
    [{"total_timeout_seconds": 0}, {"prefer": "ldap"}, {"max_cache_entries": 0}],
)
def test_nonsense_revocation_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RevocationConfig(**kwargs)  # type: ignore[arg-type]
