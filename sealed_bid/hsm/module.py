"""Finding the PKCS#11 module (the shared library) the service talks to.

Owns the search order: an explicit ``Settings.pkcs11_module`` wins, otherwise the usual
SoftHSM2 install paths. It never loads the library (loading fixes SoftHSM's
configuration for the life of the process; see ``softhsm.prepare_environment``).
"""

from __future__ import annotations

from pathlib import Path

from sealed_bid.config import Settings
from sealed_bid.errors import ConfigError

SOFTHSM_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib64/pkcs11/libsofthsm2.so"),
    Path("/usr/lib/pkcs11/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
    Path("/opt/homebrew/lib/softhsm/libsofthsm2.so"),
    Path("/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so"),
)
"""Where distributions and Homebrew install SoftHSM2, most common first."""


def find_module(settings: Settings) -> Path:
    """The PKCS#11 module to load. Raises ``ConfigError`` if it does not exist."""
    if settings.pkcs11_module:
        explicit = Path(settings.pkcs11_module)
        if not explicit.is_file():
            raise ConfigError(
                f"pkcs11_module {explicit} does not exist or is not a file; "
                "set it to your HSM vendor's PKCS#11 library"
            )
        return explicit
    for candidate in SOFTHSM_CANDIDATES:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(p) for p in SOFTHSM_CANDIDATES)
    raise ConfigError(
        "no PKCS#11 module configured and SoftHSM2 not found "
        f"(searched {searched}); install softhsm2 or set pkcs11_module"
    )


def is_softhsm(module: Path) -> bool:
    """Whether ``module`` is SoftHSM2 (decided by its file name, as its path varies)."""
    return "softhsm" in module.name.lower()
