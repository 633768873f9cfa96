"""Setting up a SoftHSM2 token for one service state directory.

Owns ``<state_dir>/softhsm2.conf`` (its own token directory, file backend), the token's
initialisation with random PINs, the user-PIN file, and ``SOFTHSM2_CONF`` in this
process. It must never print, log or raise a PIN, never put a PIN on a command line
(argv is world-readable in /proc), and never store the SO PIN: it is generated, used
once to initialise the token, and forgotten. Real HSMs are set up with vendor tools;
see hsm_config/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import re
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sealed_bid.config import Settings, load_settings
from sealed_bid.errors import ConfigError, TokenError
from sealed_bid.hsm.module import find_module, is_softhsm

SOFTHSM_CONF_TEMPLATE = """\
# SoftHSM2 configuration for one Sealed Bid state directory.
# Written by sealed_bid.hsm.softhsm; template in hsm_config/softhsm2.conf.in.
directories.tokendir = {tokendir}
objectstore.backend = file
log.level = ERROR
slots.removable = false
"""

_DIALOGUE_TIMEOUT_SECONDS = 60.0
_PIN_BYTES = 24
"""24 random bytes, 32 URL-safe characters: within SoftHSM's 4..255 PIN length."""
_LABEL_LINE = re.compile(r"^\s*Label:\s*(.*?)\s*$")


def token_dir(settings: Settings) -> Path:
    return settings.state_dir / "softhsm" / "tokens"


def render_softhsm_conf(tokendir: Path) -> str:
    return SOFTHSM_CONF_TEMPLATE.format(tokendir=tokendir.resolve())


def write_softhsm_conf(settings: Settings) -> Path:
    """Write ``<state_dir>/softhsm2.conf`` and its token directory if missing; return the
    configuration path. A configuration the operator named explicitly is never written."""
    conf = settings.softhsm_conf_path
    if settings.softhsm_conf:
        if not conf.is_file():
            raise ConfigError(f"softhsm_conf {conf} does not exist")
        return conf
    tokens = token_dir(settings)
    tokens.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Token files hold wrapped keys; only the service user may list or read them.
    os.chmod(tokens, 0o700)
    if not conf.exists():
        _write_private_file(conf, render_softhsm_conf(tokens), mode=0o644)
    return conf


def prepare_environment(settings: Settings) -> Path | None:
    """Point ``SOFTHSM2_CONF`` of this process at the state directory's configuration.

    Must run before the PKCS#11 module is first loaded in this process (SoftHSM reads
    its configuration once, at C_Initialize). Does nothing, and returns None, when the
    configured module is not SoftHSM.
    """
    module = find_module(settings)
    if not is_softhsm(module):
        return None
    conf = settings.softhsm_conf_path.resolve()
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


def _child_env(conf: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SOFTHSM2_CONF"] = str(conf)
    return env


def token_exists(settings: Settings) -> bool:
    """Whether an initialised token labelled ``settings.token_label`` is in the
    state directory's SoftHSM configuration (asked of softhsm2-util, not loaded here)."""
    module = find_module(settings)
    conf = settings.softhsm_conf_path
    if not conf.is_file():
        return False
    result = subprocess.run(
        ["softhsm2-util", "--module", str(module), "--show-slots"],
        env=_child_env(conf),
        capture_output=True,
        text=True,
        check=False,
        timeout=_DIALOGUE_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        raise TokenError(f"softhsm2-util --show-slots failed: {result.stderr.strip()}")
    for line in result.stdout.splitlines():
        match = _LABEL_LINE.match(line)
        if match and match.group(1) == settings.token_label:
            return True
    return False


def init_softhsm_token(settings: Settings) -> None:
    """Create the SoftHSM2 token ``settings.token_label`` for this state directory, with
    a random user PIN (written to ``settings.pin_path``, mode 0600) and a random SO PIN
    that is not kept. Does nothing if the token exists."""
    module = find_module(settings)
    if not is_softhsm(module):
        raise ConfigError(
            f"{module} is not SoftHSM2: create the token with the HSM vendor's tools "
            "(see hsm_config/README.md)"
        )
    conf = write_softhsm_conf(settings)
    if token_exists(settings):
        if not settings.pin_path.is_file():
            raise ConfigError(
                f"token {settings.token_label!r} exists but its PIN file {settings.pin_path} "
                "is missing; restore it or reset the user PIN with the SO PIN"
            )
        return
    user_pin = secrets.token_urlsafe(_PIN_BYTES)
    so_pin = secrets.token_urlsafe(_PIN_BYTES)
    # The PIN file is written first: a token whose PIN was lost would be useless.
    _write_pin_file(settings.pin_path, user_pin)
    try:
        _init_token_over_pty(module, conf, settings.token_label, so_pin, user_pin)
    except BaseException:
        settings.pin_path.unlink(missing_ok=True)
        raise


def _write_pin_file(path: Path, pin: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for existing directories.
    os.chmod(path.parent, 0o700)
    _write_private_file(path, pin + "\n", mode=0o600)


def _write_private_file(path: Path, text: str, *, mode: int) -> None:
    """Write ``text`` to a temporary file created with ``mode`` (never wider, whatever
    the umask), then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _init_token_over_pty(module: Path, conf: Path, label: str, so_pin: str, user_pin: str) -> None:
    """Run ``softhsm2-util --init-token`` and answer its PIN prompts on a pseudo-terminal.

    softhsm2-util takes PINs either as arguments (visible to every local user in
    /proc/<pid>/cmdline) or from a terminal (it refuses a pipe), so it gets a pty.
    """
    master, slave = pty.openpty()
    try:
        child = subprocess.Popen(
            [
                "softhsm2-util",
                "--module",
                str(module),
                "--init-token",
                "--free",
                "--label",
                label,
            ],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=_child_env(conf),
            close_fds=True,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    transcript = ""
    try:
        transcript = _answer_prompts(master, so_pin, user_pin)
        returncode = child.wait(timeout=_DIALOGUE_TIMEOUT_SECONDS)
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        os.close(master)
    if returncode != 0:
        last = _scrub(transcript, so_pin, user_pin).strip().splitlines()[-1:]
        raise TokenError(
            f"softhsm2-util could not initialise token {label!r} (exit {returncode})",
            detail=last[0] if last else "",
        )


def _answer_prompts(master: int, so_pin: str, user_pin: str) -> str:
    """Read the child's output until it exits, answering each PIN prompt."""
    deadline = time.monotonic() + _DIALOGUE_TIMEOUT_SECONDS
    transcript = ""
    pending = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TokenError("softhsm2-util did not finish initialising the token in time")
        ready, _, _ = select.select([master], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096).decode("utf-8", errors="replace")
        except OSError:  # EIO: the child closed the terminal
            return transcript
        if not chunk:
            return transcript
        transcript += chunk
        pending += chunk
        if pending.rstrip().endswith(":") and "PIN" in pending:
            prompt = pending.rstrip().splitlines()[-1]
            answer = so_pin if "SO PIN" in prompt else user_pin
            os.write(master, (answer + "\n").encode("utf-8"))
            pending = ""


def _scrub(text: str, *pins: str) -> str:
    for pin in pins:
        text = text.replace(pin, "***")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sealed_bid.hsm.softhsm",
        description="Create the SoftHSM2 token of a Sealed Bid state directory (idempotent).",
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, help="Sealed Bid TOML configuration")
    parser.add_argument("--label", help="token label (default: from configuration)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    settings = replace(settings, state_dir=args.state_dir)
    if args.label:
        settings = replace(settings, token_label=args.label)
    try:
        init_softhsm_token(settings)
    except (ConfigError, TokenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"token {settings.token_label!r} ready; SOFTHSM2_CONF={settings.softhsm_conf_path}; "
        f"user PIN file {settings.pin_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
