"""The development TSA's files and its command line: certificates with the RFC 3161
profile (checked with cryptography and openssl), keys 0600, and
``python -m sealed_bid.timestamping.dev_tsa`` serving stamps until it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealed_bid.crypto.certs import CertProfile, timestamping_profile
from sealed_bid.errors import ConfigError
from sealed_bid.timestamping import TimestampClient
from sealed_bid.timestamping.dev_tsa import DevTsaFiles, load_dev_tsa, make_dev_tsa

from .conftest import DIGEST

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_files_and_profile(tsa: DevTsaFiles, now: datetime) -> None:
    assert {p.name for p in tsa.directory.iterdir()} >= {
        "tsa-root.pem",
        "tsa-root.key",
        "tsa.pem",
        "tsa.key",
    }
    for key in (tsa.key, tsa.root_key):
        assert key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(tsa.cert.read_bytes())
    root = x509.load_pem_x509_certificate(tsa.root_cert.read_bytes())
    assert "Dev TSA Root" in root.subject.rfc4514_string()
    assert cert.issuer == root.subject
    cert.verify_directly_issued_by(root)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert load_dev_tsa(tsa.directory) == tsa


@pytest.mark.openssl
def test_openssl_accepts_the_certificate_for_time_stamping(tsa: DevTsaFiles) -> None:
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tsa.root_cert),
            "-purpose",
            "timestampsign",
            str(tsa.cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_critical_eku_needs_an_eku() -> None:
    assert timestamping_profile().extended_key_usage_critical
    with pytest.raises(ValueError, match="extended key usage"):
        CertProfile(key_usage=frozenset({"digital_signature"}), extended_key_usage_critical=True)


def test_load_refuses_an_incomplete_directory(tmp_path: Path, now: datetime) -> None:
    files = make_dev_tsa(tmp_path / "tsa", now)
    files.key.unlink()
    with pytest.raises(ConfigError):
        load_dev_tsa(tmp_path / "tsa")


def test_command_line_serves_until_killed(tmp_path: Path) -> None:
    directory = tmp_path / "cli-tsa"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealed_bid.timestamping.dev_tsa",
            "--dir",
            str(directory),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        roots = [load_dev_tsa(directory).root_der()]
        token = TimestampClient(url, roots).stamp(DIGEST)
        assert token.message_imprint == DIGEST
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0
