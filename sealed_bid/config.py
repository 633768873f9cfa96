"""One typed configuration object: a TOML file plus SEALED_BID_* environment overrides,
validated at start-up. Defaults give a working local set-up under one state directory.

Secrets (the token PIN) are never values here: only the path of the file holding them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sealed_bid.errors import ConfigError

DEFAULT_STATE_DIR = Path("state")


@dataclass(frozen=True)
class Limits:
    """Every limit the service enforces, in one place; each has a test at its edge."""

    max_chunk_bytes: int = 1024 * 1024
    """Largest data chunk accepted in one gRPC message."""
    default_max_envelope_bytes: int = 64 * 1024 * 1024
    """A tender's envelope size limit when its creator names none."""
    hard_max_envelope_bytes: int = 2 * 1024 * 1024 * 1024
    """No tender may set a larger envelope limit."""
    max_signature_bytes: int = 64 * 1024
    """Largest detached outer signature or signed statement."""
    signing_time_skew_seconds: int = 15 * 60
    """How far a signature's signingTime may lie from the service clock."""
    min_schedule_lead_seconds: int = 0
    """How far in the future a deadline must be at tender creation."""
    trust_refresh_seconds: int = 5
    """How often the running service looks for trust-store changes (new CRLs, CAs)."""
    tsa_timeout_seconds: int = 10
    """How long one request to the time-stamping authority may take."""


@dataclass(frozen=True)
class Settings:
    state_dir: Path = DEFAULT_STATE_DIR
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at <state_dir>/sealed-bid.db."""
    pkcs11_module: str = ""
    """Path of the PKCS#11 module; empty means find SoftHSM2 in the usual places."""
    token_label: str = "sealed-bid"  # noqa: S105 - a label, not a secret
    token_pin_file: str = ""
    """File holding the token user PIN; empty means <state_dir>/secrets/token-pin."""
    softhsm_conf: str = ""
    """SOFTHSM2_CONF to use; empty means <state_dir>/softhsm2.conf (own token directory)."""
    public_listen: str = "127.0.0.1:50051"
    """TLS port for bidders and the public."""
    operator_listen: str = "127.0.0.1:50052"
    """mTLS port for operators (tender creation, opening)."""
    authority_listen: str = "127.0.0.1:50053"
    """mTLS port for CA authorities pushing their CRLs and intermediates; empty: no listener."""
    pki_dir: str = ""
    """Where the certificates live; empty means <state_dir>/pki (the dev PKI's layout)."""
    platform_root_file: str = ""
    """PEM root that certifies the platform's keys; empty: <pki>/platform/dev-platform-root.pem."""
    platform_cert_dir: str = ""
    """Certificates of the token-held keys, <label>.pem; empty: <pki>/platform."""
    tls_cert_file: str = ""
    """Server certificate chain (PEM); empty: <pki>/platform/server.pem."""
    tls_key_file: str = ""
    """Server TLS private key (PEM); empty: <pki>/platform/server.key.pem."""
    operator_ca_file: str = ""
    """Roots that operator client certificates must chain to; empty: the platform root."""
    trust_dir: str = ""
    """Bidder CA trust store, <trust>/<ca-id>/{anchors,intermediates,crls}; empty: <pki>/trust."""
    tsa_url: str = ""
    """RFC 3161 time-stamping authority (http:// or https://). It proves every opening time
    and stamps every receipt; empty: receipts carry no time stamp and nothing can be opened."""
    tsa_trust_file: str = ""
    """PEM roots the TSA's certificate must chain to; empty: <pki>/tsa/tsa-root.pem."""
    log_level: str = "INFO"
    """Level of the service's structured log (DEBUG, INFO, WARNING, ERROR)."""
    limits: Limits = field(default_factory=Limits)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'sealed-bid.db'}"

    @property
    def pin_path(self) -> Path:
        return Path(self.token_pin_file) if self.token_pin_file else self.secrets_dir / "token-pin"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def softhsm_conf_path(self) -> Path:
        return Path(self.softhsm_conf) if self.softhsm_conf else self.state_dir / "softhsm2.conf"

    @property
    def pki_path(self) -> Path:
        return Path(self.pki_dir) if self.pki_dir else self.state_dir / "pki"

    def _pki_file(self, explicit: str, *default: str) -> Path:
        return Path(explicit) if explicit else self.pki_path.joinpath(*default)

    @property
    def platform_root_path(self) -> Path:
        return self._pki_file(self.platform_root_file, "platform", "dev-platform-root.pem")

    def platform_cert_path(self, label: str) -> Path:
        return self._pki_file(self.platform_cert_dir, "platform") / f"{label}.pem"

    @property
    def tls_cert_path(self) -> Path:
        return self._pki_file(self.tls_cert_file, "platform", "server.pem")

    @property
    def tls_key_path(self) -> Path:
        return self._pki_file(self.tls_key_file, "platform", "server.key.pem")

    @property
    def operator_ca_path(self) -> Path:
        return Path(self.operator_ca_file) if self.operator_ca_file else self.platform_root_path

    @property
    def tsa_trust_path(self) -> Path:
        return self._pki_file(self.tsa_trust_file, "tsa", "tsa-root.pem")

    @property
    def trust_path(self) -> Path:
        return self._pki_file(self.trust_dir, "trust")

    @property
    def blob_dir(self) -> Path:
        return self.state_dir / "blobs"

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "records"

    @property
    def work_dir(self) -> Path:
        """Scratch space for streams being received and bids being opened."""
        return self.state_dir / "work"


_ENV_PREFIX = "SEALED_BID_"


def _coerce(name: str, value: Any, target: Any) -> Any:
    if isinstance(target, Path):
        return Path(str(value))
    if isinstance(target, bool):
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"1", "true", "yes", "on"}
    if isinstance(target, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(target, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported setting type")


def load_settings(path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read ``path`` (TOML; optional) then apply ``SEALED_BID_<NAME>`` and
    ``SEALED_BID_LIMIT_<NAME>`` environment overrides. Unknown keys are errors."""
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    raw_limits = raw.pop("limits", {})
    base = Settings()
    known = {f.name for f in fields(Settings)} - {"limits"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name in known:
        target = getattr(base, name)
        if name in raw:
            values[name] = _coerce(name, raw[name], target)
        env_name = _ENV_PREFIX + name.upper()
        if env_name in env:
            values[name] = _coerce(env_name, env[env_name], target)
    limit_names = {f.name for f in fields(Limits)}
    if not isinstance(raw_limits, dict) or set(raw_limits) - limit_names:
        raise ConfigError(f"unknown limits: {sorted(set(raw_limits) - limit_names)}")
    limit_values: dict[str, Any] = {}
    for name in limit_names:
        target = getattr(base.limits, name)
        if name in raw_limits:
            limit_values[name] = _coerce(name, raw_limits[name], target)
        env_name = _ENV_PREFIX + "LIMIT_" + name.upper()
        if env_name in env:
            limit_values[name] = _coerce(env_name, env[env_name], target)
    limits = replace(base.limits, **limit_values)
    for name in limit_names:
        if getattr(limits, name) < 0:
            raise ConfigError(f"limit {name} must not be negative")
    if limits.max_chunk_bytes < 1024:
        raise ConfigError("limit max_chunk_bytes must be at least 1024")
    settings = replace(base, **values, limits=limits)
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(
            f"log_level must be DEBUG, INFO, WARNING or ERROR, not {settings.log_level!r}"
        )
    return settings
