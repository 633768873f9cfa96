"""One SoftHSM2 token for the hsm tests, created once per session in a temporary state
directory. SoftHSM reads SOFTHSM2_CONF once per process, so every test in this process
uses this token's configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sealed_bid.config import Settings
from sealed_bid.hsm.token import Token

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def token(hsm_settings: Settings) -> Iterator[Token]:
    with Token.open(hsm_settings) as opened:
        opened.ensure_platform_keys()
        yield opened


RunPython = Callable[[str], "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def run_python() -> RunPython:
    """Run code in a fresh interpreter (its own PKCS#11 login) with the repo importable."""

    def run(code: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        # The child must find its configuration through Settings, as the service does.
        env.pop("SOFTHSM2_CONF", None)
        return subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=REPO_ROOT,
        )

    return run
