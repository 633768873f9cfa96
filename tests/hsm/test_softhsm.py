"""Setting up the SoftHSM2 token of a state directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sealed_bid.config import Settings
from sealed_bid.errors import ConfigError
from sealed_bid.hsm.softhsm import (
    init_softhsm_token,
    prepare_environment,
    render_softhsm_conf,
    token_dir,
    token_exists,
)

from .conftest import REPO_ROOT

pytestmark = pytest.mark.token


def test_pin_file_is_private(hsm_settings: Settings) -> None:
    pin_file = hsm_settings.pin_path
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(pin_file.parent.stat().st_mode) == 0o700
    assert len(pin_file.read_text().strip()) >= 32


def test_token_directory_is_private_and_inside_the_state_dir(hsm_settings: Settings) -> None:
    tokens = token_dir(hsm_settings)
    assert tokens.is_relative_to(hsm_settings.state_dir)
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o700
    assert any(tokens.iterdir())


def test_conf_names_the_state_dirs_own_token_directory(hsm_settings: Settings) -> None:
    conf = hsm_settings.softhsm_conf_path.read_text()
    assert f"directories.tokendir = {token_dir(hsm_settings).resolve()}\n" in conf
    assert "objectstore.backend = file\n" in conf
    assert "log.level = ERROR\n" in conf


def test_shipped_template_matches_what_is_written(tmp_path: Path) -> None:
    template = (REPO_ROOT / "hsm_config" / "softhsm2.conf.in").read_text()
    rendered = template.replace("@TOKENDIR@", str(tmp_path.resolve()))
    assert rendered == render_softhsm_conf(tmp_path)


def test_init_is_idempotent(hsm_settings: Settings) -> None:
    pin = hsm_settings.pin_path.read_text()
    init_softhsm_token(hsm_settings)
    assert hsm_settings.pin_path.read_text() == pin
    assert token_exists(hsm_settings)


def test_token_without_its_pin_file_is_a_config_error(
    hsm_settings: Settings, tmp_path: Path
) -> None:
    lost = replace(hsm_settings, token_pin_file=str(tmp_path / "lost-pin"))
    with pytest.raises(ConfigError, match="PIN file"):
        init_softhsm_token(lost)


def test_only_softhsm_tokens_are_initialised_here(tmp_path: Path) -> None:
    vendor = tmp_path / "libvendor-pkcs11.so"
    vendor.write_bytes(b"")
    settings = Settings(state_dir=tmp_path / "state", pkcs11_module=str(vendor))
    with pytest.raises(ConfigError, match="vendor"):
        init_softhsm_token(settings)
    assert not settings.pin_path.exists()
    assert prepare_environment(settings) is None


def test_prepare_environment_points_softhsm_at_the_state_dir(hsm_settings: Settings) -> None:
    conf = prepare_environment(hsm_settings)
    assert conf == hsm_settings.softhsm_conf_path.resolve()
    assert os.environ["SOFTHSM2_CONF"] == str(conf)


def test_setup_script_creates_a_token_and_prints_no_pin(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("SOFTHSM2_CONF", None)
    script = REPO_ROOT / "hsm_config" / "setup-softhsm-token"
    result = subprocess.run(
        [str(script), "--state-dir", str(state), "--label", "script-test"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    settings = Settings(state_dir=state, token_label="script-test")
    assert token_exists(settings)
    pin = settings.pin_path.read_text().strip()
    assert pin not in result.stdout + result.stderr
    assert "script-test" in result.stdout
