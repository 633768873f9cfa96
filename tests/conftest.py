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

from sealed_bid.config import Limits, Settings
from sealed_bid.hsm.softhsm import init_softhsm_token, write_softhsm_conf


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


@pytest.fixture(scope="session")
def hsm_settings(softhsm_state: Path, softhsm_conf: Path) -> Settings:
    """The hsm tests' token, in the state directory that holds the session's config."""
    settings = Settings(state_dir=softhsm_state, token_label="hsm-tests")
    assert settings.softhsm_conf_path == softhsm_conf
    return settings


@pytest.fixture(scope="session")
def e2e_settings(tmp_path_factory: pytest.TempPathFactory, softhsm_conf: Path) -> Settings:
    """The end-to-end service's own state directory, sharing the session's SoftHSM config."""
    return Settings(
        state_dir=tmp_path_factory.mktemp("service-state"),
        softhsm_conf=str(softhsm_conf),
        token_label="e2e",
        # Trust-store changes show on the next request, so tests need not wait.
        limits=Limits(trust_refresh_seconds=0),
    )


@pytest.fixture(scope="session", autouse=True)
def _all_test_tokens(hsm_settings: Settings, e2e_settings: Settings) -> None:
    """Create every token of the session before any test loads the PKCS#11 module:
    SoftHSM2 lists the tokens it found at C_Initialize and does not see later ones."""
    for settings in (hsm_settings, e2e_settings):
        init_softhsm_token(settings)
