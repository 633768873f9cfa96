"""Which PKCS#11 module the service loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealed_bid.config import Settings, load_settings
from sealed_bid.errors import ConfigError
from sealed_bid.hsm.module import SOFTHSM_CANDIDATES, find_module, is_softhsm


def test_explicit_module_path_wins(tmp_path: Path) -> None:
    vendor = tmp_path / "libvendor-pkcs11.so"
    vendor.write_bytes(b"")
    assert find_module(Settings(pkcs11_module=str(vendor))) == vendor


def test_missing_explicit_module_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pkcs11_module"):
        find_module(Settings(pkcs11_module=str(tmp_path / "absent.so")))


def test_softhsm_is_found_in_the_usual_places() -> None:
    found = find_module(Settings())
    assert found in SOFTHSM_CANDIDATES
    assert found.is_file()
    assert is_softhsm(found)


def test_a_vendor_module_is_not_softhsm() -> None:
    assert not is_softhsm(Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"))


@pytest.mark.parametrize("example", ["sealed-bid.softhsm.toml", "sealed-bid.hsm.toml"])
def test_shipped_example_configurations_load(example: str) -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "hsm_config" / example, env={})
    assert settings.token_label == "sealed-bid"
