"""Running the real ``sealed-bid`` command line in subprocesses.

The CLI commands that use the token must run in their own process: SoftHSM2 reads
SOFTHSM2_CONF once per process, and this test process already loaded the session's
configuration. Each child gets an environment without SOFTHSM2_CONF or any SEALED_BID_*
setting of the developer's, so it uses only the state directory a test names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_SERVE_START_SECONDS = 60.0
_SERVING = re.compile(r"serving: public 127\.0\.0\.1:(\d+), operator (\d+)")


def cli_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "SOFTHSM2_CONF" and not k.startswith("SEALED_BID_")
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(overrides)
    return env


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``sealed-bid ARGS`` in a fresh interpreter; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "sealed_bid.cli.main", *map(str, args)],
        env=env or cli_env(),
        cwd=cwd or REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def require_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


@dataclass(frozen=True)
class ServedCli:
    """A ``sealed-bid serve`` process and what the CLI needs to talk to it."""

    state_dir: Path
    env: dict[str, str]
    """For client commands: the server's actual ports."""

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--state-dir", self.state_dir, env=self.env, cwd=cwd)

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def database(self) -> Path:
        return self.state_dir / "sealed-bid.db"


@pytest.fixture(scope="module")
def served_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCli]:
    """``sealed-bid init`` then ``sealed-bid serve`` on ephemeral ports, in subprocesses."""
    base = tmp_path_factory.mktemp("cli-served")
    state = base / "state"
    require_ok(run_cli("init", "--state-dir", state, timeout=120))
    log = base / "serve.out"
    errors = base / "serve.err"
    with log.open("w") as out, errors.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "sealed_bid.cli.main", "serve", "--state-dir", str(state)],
            env=cli_env(
                SEALED_BID_PUBLIC_LISTEN="127.0.0.1:0",
                SEALED_BID_OPERATOR_LISTEN="127.0.0.1:0",
            ),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + _SERVE_START_SECONDS
        match = None
        while match is None:
            if server.poll() is not None:
                pytest.fail(f"sealed-bid serve exited {server.returncode}: {errors.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"sealed-bid serve did not start: {errors.read_text()}")
            time.sleep(0.1)
            match = _SERVING.search(log.read_text())
        env = cli_env(
            SEALED_BID_PUBLIC_LISTEN=f"127.0.0.1:{match.group(1)}",
            SEALED_BID_OPERATOR_LISTEN=f"127.0.0.1:{match.group(2)}",
        )
        yield ServedCli(state, env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()
