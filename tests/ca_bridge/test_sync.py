"""The CA sync job against real servers on 127.0.0.1: a loopback HTTP server publishing the
two-CA test PKI's certificates and CRLs (tests/ca_bridge/pki), the PKI's blackhole (a
server that never answers) and a port nobody listens on. The trust store is a real
SQLite database; nothing is mocked and no timing is asserted (pytest-timeout bounds it)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem
from certomancer.registry import ArchLabel, ServiceLabel
from cryptography import x509
from sqlalchemy import Engine

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.fetching import FetchLimits, HttpFetcher
from ca_bridge.store_models import CertRole, Source, create_trust_schema
from ca_bridge.sync import (
    SOURCE_UNREACHABLE,
    SYNC_ACTOR,
    CaSync,
    SourceKind,
    SyncReport,
    SyncSources,
    create_source_schema,
)
from ca_bridge.trust_errors import CaNotFound, TrustChangeRefused
from sealed_bid.storage.db import make_engine
from tests.ca_bridge.pki.fixtures import CA_A, CA_B, TwoCaPki, shared_two_ca_pki

# A server that would hang for ever costs this much per request; the test finishing
# proves the time-out was honoured.
SHORT = FetchLimits(request_timeout_seconds=0.5)


@pytest.fixture(scope="session")
def two_ca_pki(tmp_path_factory: pytest.TempPathFactory) -> TwoCaPki:
    return shared_two_ca_pki(tmp_path_factory)


class Publisher:
    """A CA's web server: serves ``files`` (path -> bytes) on 127.0.0.1, 404 otherwise.
    A test changes ``files`` to publish something else."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    server = Publisher()
    try:
        yield server
    finally:
        server.close()


def unused_port_url() -> str:
    """A URL on a loopback port that was just free: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/bundle.pem"


def pem_certs(*ders: bytes) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", der) for der in ders)


def crl(pki: TwoCaPki, arch: str, repo: str, number: int) -> bytes:
    registry = pki.config.get_pki_arch(ArchLabel(arch)).service_registry
    return bytes(registry.get_crl(ServiceLabel(repo), number=number).dump())


def crl_number(der: bytes) -> int:
    loaded = x509.load_der_x509_crl(der)
    return loaded.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


N = 40  # CRL numbers used here; certomancer derives thisUpdate from them


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'sealed-bid.db'}")
    create_trust_schema(eng)
    create_source_schema(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine: Engine, two_ca_pki: TwoCaPki) -> DbTrustStore:
    """CA A and CA B with their roots approved by two operators, CA A's root CRL #N-1 held;
    no intermediates (the sync job brings them)."""
    trust = DbTrustStore(engine)
    for ca_id, root in ((CA_A, "ca-a/a-root"), (CA_B, "ca-b/b-root")):
        pending = trust.propose_anchor(ca_id, two_ca_pki.cert(root), "alice")
        trust.approve_anchor(pending.sha256, "bob")
    trust.add_crl(CA_A, crl(two_ca_pki, "ca-a", "a-root", N - 1), "alice", Source.OPERATOR)
    return trust


@pytest.fixture
def sources(engine: Engine) -> SyncSources:
    return SyncSources(engine)


def job(trust: DbTrustStore, sources: SyncSources) -> CaSync:
    return CaSync(trust, sources, HttpFetcher(SHORT))


def publish_ca_a(pki: TwoCaPki, publisher: Publisher, sources: SyncSources) -> None:
    """CA A's web site: a bundle (its root, which sync skips, and two intermediates) and
    the CRLs of its root and of one intermediate, newer than the one held."""
    publisher.files["/a/bundle.pem"] = pem_certs(
        pki.cert("ca-a/a-root"), pki.cert("ca-a/a-interm"), pki.cert("ca-a/a-nc-interm")
    )
    publisher.files["/a/root.crl"] = crl(pki, "ca-a", "a-root", N)
    publisher.files["/a/interm.crl"] = pem.armor("X509 CRL", crl(pki, "ca-a", "a-interm", N))
    sources.add(CA_A, SourceKind.BUNDLE, publisher.url("/a/bundle.pem"), "alice")
    # CRL sources added first: the sync still takes bundles first (a CRL may be signed by
    # an intermediate the bundle brings).
    sources.add(CA_A, SourceKind.CRL, publisher.url("/a/interm.crl"), "alice")
    sources.add(CA_A, SourceKind.CRL, publisher.url("/a/root.crl"), "alice")


def outcomes(report: SyncReport) -> dict[str, tuple[str, str | None]]:
    return {r.source.url: (r.outcome, r.code) for r in report.results}


# --- the tests ------------------------------------------------------------------------


def test_sync_adds_new_intermediates_and_newer_crls_recorded_as_sync(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publish_ca_a(two_ca_pki, publisher, sources)

    report = job(store, sources).run_once()

    assert report.ok, report.lines()
    assert {outcome for outcome, _ in outcomes(report).values()} == {"changed"}
    (ca_a,) = (ca for ca in store.list_cas() if ca.ca_id == CA_A)
    assert sorted(c.role for c in ca_a.certificates) == [
        CertRole.ANCHOR,
        CertRole.INTERMEDIATE,
        CertRole.INTERMEDIATE,
    ]
    assert {r.crl_number for r in ca_a.crls} == {N}
    added = [c for c in store.changes() if c.actor == SYNC_ACTOR]
    assert sorted(c.event for c in added) == [
        "trust.crl_added",
        "trust.crl_added",
        "trust.intermediate_added",
        "trust.intermediate_added",
    ]
    assert {c.fields["source"] for c in added} == {"sync"}
    snapshot = store.snapshot().material(CA_A)
    assert two_ca_pki.cert("ca-a/a-interm") in snapshot.intermediates


def test_a_second_sync_changes_nothing(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publish_ca_a(two_ca_pki, publisher, sources)
    job(store, sources).run_once()
    version = store.version()

    report = job(store, sources).run_once()

    assert report.ok
    assert {outcome for outcome, _ in outcomes(report).values()} == {"unchanged"}
    assert store.version() == version


def test_an_older_crl_is_reported_CRL_NOT_NEWER_and_the_store_keeps_the_newer_one(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publish_ca_a(two_ca_pki, publisher, sources)
    job(store, sources).run_once()
    version = store.version()
    publisher.files["/a/root.crl"] = crl(two_ca_pki, "ca-a", "a-root", N - 2)

    report = job(store, sources).run_once()

    assert not report.ok
    assert outcomes(report)[publisher.url("/a/root.crl")] == ("error", "CRL_NOT_NEWER")
    assert outcomes(report)[publisher.url("/a/interm.crl")] == ("unchanged", None)
    assert store.version() == version
    held = store.snapshot().material(CA_A).crls
    assert sorted(crl_number(d) for d in held) == [N, N]


def test_a_re_signed_copy_of_the_held_crl_is_unchanged_not_CRL_NOT_NEWER(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    # CA B signs with ECDSA: every signature of the same CRL is different bytes.
    first = crl(two_ca_pki, "ca-b", "b-root", N)
    again = crl(two_ca_pki, "ca-b", "b-root", N)
    assert first != again
    publisher.files["/b/root.crl"] = first
    sources.add(CA_B, SourceKind.CRL, publisher.url("/b/root.crl"), "alice")
    assert job(store, sources).run_once().ok
    publisher.files["/b/root.crl"] = again

    report = job(store, sources).run_once()

    assert outcomes(report) == {publisher.url("/b/root.crl"): ("unchanged", None)}


def test_a_hanging_source_costs_one_fetch_time_out_and_the_others_still_sync(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publish_ca_a(two_ca_pki, publisher, sources)
    hanging = two_ca_pki.blackhole.base_url + "/b/bundle.pem"
    sources.add(CA_B, SourceKind.BUNDLE, hanging, "alice")
    connections = two_ca_pki.blackhole.connections

    report = job(store, sources).run_once()

    by_url = {r.source.url: r for r in report.results}
    assert (by_url[hanging].outcome, by_url[hanging].code) == ("error", SOURCE_UNREACHABLE)
    assert by_url[hanging].reason == "timeout"
    assert two_ca_pki.blackhole.connections == connections + 1
    assert [r.outcome for r in report.results if r.source.ca_id == CA_A] == ["changed"] * 3
    assert not report.ok


def test_an_unreachable_source_and_a_missing_file_are_reported_per_source(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publish_ca_a(two_ca_pki, publisher, sources)
    refused = unused_port_url()
    missing = publisher.url("/b/no-such.crl")
    sources.add(CA_B, SourceKind.BUNDLE, refused, "alice")
    sources.add(CA_B, SourceKind.CRL, missing, "alice")

    report = job(store, sources).run_once()

    by_url = {r.source.url: r for r in report.results}
    assert (by_url[refused].code, by_url[refused].reason) == (SOURCE_UNREACHABLE, "connection")
    assert (by_url[missing].code, by_url[missing].reason) == (SOURCE_UNREACHABLE, "http-status")
    assert "HTTP 404" in by_url[missing].line()
    assert [r.outcome for r in report.results if r.source.ca_id == CA_A] == ["changed"] * 3


def test_a_self_signed_root_in_a_bundle_is_never_added_as_an_anchor(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    # CA B's root published as CA A's: sync must not make it trusted for CA A.
    publisher.files["/a/bundle.pem"] = pem_certs(two_ca_pki.cert("ca-b/b-root"))
    sources.add(CA_A, SourceKind.BUNDLE, publisher.url("/a/bundle.pem"), "alice")
    version = store.version()

    (result,) = job(store, sources).run_once().results

    assert result.outcome == "unchanged"
    assert "never by sync" in result.detail
    assert store.version() == version
    assert store.snapshot().material(CA_A).anchors == (two_ca_pki.cert("ca-a/a-root"),)


def test_an_intermediate_of_another_ca_is_INTERMEDIATE_UNCHAINED_and_the_rest_is_added(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publisher.files["/a/bundle.pem"] = pem_certs(
        two_ca_pki.cert("ca-b/b-interm"), two_ca_pki.cert("ca-a/a-interm")
    )
    sources.add(CA_A, SourceKind.BUNDLE, publisher.url("/a/bundle.pem"), "alice")

    (result,) = job(store, sources).run_once().results

    assert (result.outcome, result.code) == ("error", "INTERMEDIATE_UNCHAINED")
    assert "1 intermediate(s) added" in result.detail
    intermediates = store.snapshot().material(CA_A).intermediates
    assert intermediates == (two_ca_pki.cert("ca-a/a-interm"),)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (SourceKind.BUNDLE, b"<html>maintenance</html>"),
        (SourceKind.BUNDLE, pem.armor("X509 CRL", b"\x30\x00")),
        (SourceKind.CRL, b"not a CRL"),
    ],
)
def test_material_that_does_not_parse_is_CERTIFICATE_MALFORMED(
    store: DbTrustStore,
    sources: SyncSources,
    publisher: Publisher,
    kind: SourceKind,
    body: bytes,
) -> None:
    publisher.files["/junk"] = body
    sources.add(CA_A, kind, publisher.url("/junk"), "alice")
    version = store.version()

    (result,) = job(store, sources).run_once().results

    assert (result.outcome, result.code) == ("error", "CERTIFICATE_MALFORMED")
    assert store.version() == version


def test_sources_of_a_removed_ca_are_not_synced(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher, two_ca_pki: TwoCaPki
) -> None:
    publish_ca_a(two_ca_pki, publisher, sources)
    store.remove_ca(CA_A, "carol")

    assert job(store, sources).run_once().results == ()
    assert len(sources.list(active_cas_only=False)) == 3


def test_a_source_needs_an_active_ca_and_an_http_url_and_is_added_once(
    store: DbTrustStore, sources: SyncSources, publisher: Publisher
) -> None:
    url = publisher.url("/a/bundle.pem")

    with pytest.raises(CaNotFound):
        sources.add("no-such-ca", SourceKind.BUNDLE, url, "alice")
    with pytest.raises(TrustChangeRefused):
        sources.add(CA_A, SourceKind.BUNDLE, "file:///etc/passwd", "alice")
    first = sources.add(CA_A, SourceKind.BUNDLE, url, "alice")
    again = sources.add(CA_A, SourceKind.BUNDLE, url, "bob")

    assert (first.changed, again.changed) == (True, False)
    assert again.record.added_by == "alice"
    assert sources.remove(CA_A, url) == 1
    assert sources.list() == ()
