"""Session-wide real components shared by every test area.

SoftHSM2 reads SOFTHSM2_CONF once per process, so the whole test session uses one SoftHSM
configuration (one token directory); each area gets its own token label in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealed_bid.config import Settings
from sealed_bid.hsm.softhsm import write_softhsm_conf


@pytest.fixture(scope="session")
def softhsm_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state directory whose SoftHSM configuration the whole session uses."""
    return tmp_path_factory.mktemp("hsm-state")


@pytest.fixture(scope="session")
def softhsm_conf(softhsm_state: Path) -> Iterator[Path]:
    conf = write_softhsm_conf(Settings(state_dir=softhsm_state))
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    yield conf
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def session_start() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
