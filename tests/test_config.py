from __future__ import annotations

from pathlib import Path

import pytest

from sealed_bid.config import Settings, load_settings
from sealed_bid.errors import ConfigError


def test_defaults_give_a_local_setup_under_one_state_directory() -> None:
    settings = load_settings(None, env={})
    assert settings == Settings()
    assert settings.db_url == "sqlite:///state/sealed-bid.db"
    assert settings.pin_path == Path("state/secrets/token-pin")


def test_file_then_environment_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(
        'state_dir = "/srv/sb"\ntoken_label = "prod"\n[limits]\nmax_chunk_bytes = 65536\n'
    )
    settings = load_settings(
        conf, env={"SEALED_BID_TOKEN_LABEL": "other", "SEALED_BID_LIMIT_MAX_CHUNK_BYTES": "4096"}
    )
    assert settings.state_dir == Path("/srv/sb")
    assert settings.token_label == "other"
    assert settings.limits.max_chunk_bytes == 4096


@pytest.mark.parametrize(
    "text",
    [
        "unknown = 1\n",
        "[limits]\nnope = 1\n",
        '[limits]\nmax_chunk_bytes = "x"\n',
        "[limits]\nmax_chunk_bytes = 10\n",
        "state_dir = = 1",
    ],
)
def test_bad_configuration_is_refused_at_start_up(tmp_path: Path, text: str) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(conf, env={})
