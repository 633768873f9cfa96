"""Shared CLI plumbing: settings, connections, key files."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.config import Settings, load_settings
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.devpki import load_dev_pki


def add_settings_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--state-dir", type=Path, help="service state directory")


def settings_from(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if getattr(args, "state_dir", None):
        env["SEALED_BID_STATE_DIR"] = str(args.state_dir)
    return load_settings(getattr(args, "config", None), env)


def add_connection_args(parser: argparse.ArgumentParser, operator: bool) -> None:
    add_settings_args(parser)
    parser.add_argument("--address", help="host:port of the service")
    parser.add_argument("--ca-file", type=Path, help="PEM root that issued the server certificate")
    if operator:
        parser.add_argument("--cert", type=Path, help="operator client certificate (PEM)")
        parser.add_argument("--key", type=Path, help="operator client key (PEM)")


def connect(args: argparse.Namespace, operator: bool) -> SealedBidClient:
    """Connect with explicit files, or with the local dev PKI of the state directory."""
    settings = settings_from(args)
    ca_file = args.ca_file or settings.platform_root_path
    if not ca_file.exists():
        raise SystemExit("name the server's root certificate with --ca-file")
    if operator:
        address = args.address or local_address(settings.operator_listen)
        cert, key = args.cert, args.key
        if (cert is None or key is None) and settings.pki_path.exists():
            # Only the local development set-up has an operator certificate to default to.
            dev = load_dev_pki(settings.pki_path).operator
            cert, key = cert or dev.cert, key or dev.key
        if cert is None or key is None:
            raise SystemExit("operator commands need --cert and --key")
        return SealedBidClient(address, ca_file.read_bytes(), key.read_bytes(), cert.read_bytes())
    address = args.address or local_address(settings.public_listen)
    return SealedBidClient(address, ca_file.read_bytes())


def local_address(listen: str) -> str:
    """Where to reach a service listening on ``listen`` from this machine: a wildcard
    bind is reached on 127.0.0.1, which the server certificate names."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 - comparing, not binding
        return f"127.0.0.1:{port}"
    return listen


def load_signer(key_path: Path, cert_path: Path) -> SoftwareSigner:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{key_path}: only RSA and EC keys can sign bids")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return SoftwareSigner(key, cert.public_bytes(serialization.Encoding.DER))


def pem_or_der_certificate(path: Path) -> bytes:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


def print_record(record_json: str) -> None:
    """The opening table: one row per opened bid, then the envelopes not opened."""
    record = json.loads(record_json)
    print(f"Opening record for {record['tender_id']}: {record['title']}")
    print(f"{'seq':>5}  {'bidder':<28} {'price':>16} {'cur':<4} {'days':>5}  status")
    for bid in record["bids"]:
        form = bid.get("form") or {}
        bidder = (bid.get("bidder") or {}).get("organisation") or "?"
        print(
            f"{bid['log_sequence']:>5}  {bidder[:28]:<28} {form.get('price', '-'):>16} "
            f"{form.get('currency', ''):<4} {form.get('duration_days', ''):>5}  {bid['status']}"
        )
    for bid in record["not_opened"]:
        print(f"{'':>5}  {bid['bid_id']:<28} {'':>16} {'':<4} {'':>5}  {bid['status']}")


def refusal_text(exc: ServiceError) -> str:
    """``CODE (STATUS): message`` for a refusal, without the code twice."""
    message = exc.message.removeprefix(f"{exc.code}: ")
    return f"{exc.code} ({exc.status}): {message}"
