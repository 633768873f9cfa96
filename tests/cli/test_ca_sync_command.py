"""``sealed-bid ca add-source / list / sync``: the sync job as an operator runs it, in
subprocesses on a temporary SQLite database, without the token, against CA web servers
on 127.0.0.1 (tests/ca_bridge/test_sync.py has the details of what one pass does)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.store_models import create_trust_schema
from sealed_bid.storage.db import make_engine
from tests.ca_bridge.pki.fixtures import CA_A, TwoCaPki, shared_two_ca_pki
from tests.ca_bridge.test_sync import Publisher, crl, pem_certs, unused_port_url
from tests.cli.conftest import REPO_ROOT, cli_env, run_cli

NO_TOKEN = cli_env(SEALED_BID_PKCS11_MODULE="/nonexistent/libpkcs11-must-not-load.so")


@pytest.fixture(scope="session")
def two_ca_pki(tmp_path_factory: pytest.TempPathFactory) -> TwoCaPki:
    return shared_two_ca_pki(tmp_path_factory)


@pytest.fixture
def publisher(two_ca_pki: TwoCaPki) -> Iterator[Publisher]:
    """CA A's web site: a bundle with its intermediate and its root's CRL."""
    server = Publisher()
    server.files["/bundle.pem"] = pem_certs(
        two_ca_pki.cert("ca-a/a-root"), two_ca_pki.cert("ca-a/a-interm")
    )
    server.files["/root.crl"] = crl(two_ca_pki, "ca-a", "a-root", 40)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def state(tmp_path: Path, two_ca_pki: TwoCaPki) -> Path:
    """A service database holding CA A's root, approved by two operators."""
    directory = tmp_path / "state"
    directory.mkdir()
    engine = make_engine(f"sqlite:///{directory / 'sealed-bid.db'}")
    try:
        create_trust_schema(engine)
        store = DbTrustStore(engine)
        pending = store.propose_anchor(CA_A, two_ca_pki.cert("ca-a/a-root"), "alice")
        store.approve_anchor(pending.sha256, "bob")
    finally:
        engine.dispose()
    return directory


def ca(state: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli("ca", *args, "--state-dir", state, env=NO_TOKEN)


def ok(state: Path, *args: str | Path) -> str:
    result = ca(state, *args)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def add_sources(state: Path, publisher: Publisher) -> None:
    ok(state, "add-source", "--ca", CA_A, "--bundle-url", publisher.url("/bundle.pem"),
       "--operator", "alice")  # fmt: skip
    ok(state, "add-source", "--ca", CA_A, "--crl-url", publisher.url("/root.crl"),
       "--operator", "alice")  # fmt: skip


def test_add_source_then_list_shows_the_sources_with_who_added_them(
    state: Path, publisher: Publisher
) -> None:
    add_sources(state, publisher)

    text = ok(state, "list")
    assert f"source       bundle  {publisher.url('/bundle.pem')}  (added by alice" in text
    assert f"source       crl     {publisher.url('/root.crl')}  (added by alice" in text
    (listed,) = json.loads(ok(state, "list", "--json"))
    assert [(s["kind"], s["added_by"]) for s in listed["sources"]] == [
        ("bundle", "alice"),
        ("crl", "alice"),
    ]


def test_add_source_for_an_unknown_ca_is_refused_with_CA_NOT_FOUND(
    state: Path, publisher: Publisher
) -> None:
    result = ca(state, "add-source", "--ca", "no-such-ca", "--crl-url", publisher.url("/x.crl"),
                "--operator", "alice")  # fmt: skip

    assert result.returncode == 2
    assert "CA_NOT_FOUND" in result.stderr


def test_sync_once_prints_one_line_per_source_and_a_second_sync_changes_nothing(
    state: Path, publisher: Publisher
) -> None:
    add_sources(state, publisher)

    first = ok(state, "sync", "--once")
    assert "2 source(s), 0 error(s)" in first
    assert f"bundle  {publisher.url('/bundle.pem')}  changed: 1 intermediate(s) added" in first
    assert f"crl     {publisher.url('/root.crl')}  changed: CRL #40" in first

    second = ok(state, "sync")
    assert f"{publisher.url('/bundle.pem')}  unchanged" in second
    assert f"{publisher.url('/root.crl')}  unchanged" in second


def test_sync_exits_1_when_a_source_fails_and_still_syncs_the_others(
    state: Path, publisher: Publisher
) -> None:
    add_sources(state, publisher)
    dead = unused_port_url()
    ok(state, "add-source", "--ca", CA_A, "--bundle-url", dead, "--operator", "alice")

    result = ca(state, "sync", "--once", "--timeout", "2")

    assert result.returncode == 1, result.stderr
    assert f"{dead}  error SOURCE_UNREACHABLE: connection" in result.stdout
    assert f"{publisher.url('/bundle.pem')}  changed" in result.stdout
    assert f"{publisher.url('/root.crl')}  changed" in result.stdout


def test_sync_interval_runs_passes_until_SIGTERM_then_exits_0(
    state: Path, publisher: Publisher, tmp_path: Path
) -> None:
    add_sources(state, publisher)
    out = tmp_path / "sync.out"
    with out.open("w") as sink:
        loop = subprocess.Popen(
            [sys.executable, "-m", "sealed_bid.cli.main", "ca", "sync", "--interval", "3600",
             "--state-dir", str(state)],
            env=NO_TOKEN, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "root.crl  changed" not in out.read_text():
            assert loop.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)

        loop.send_signal(signal.SIGTERM)

        assert loop.wait(timeout=30) == 0, out.read_text()
        assert out.read_text().rstrip().endswith("sync stopped")
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
