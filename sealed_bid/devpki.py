"""The local DEVELOPMENT PKI: every certificate, key and CRL a developer, the demo and the
tests need, created in one directory in about a second.

It owns the dev PKI's layout (see ``_layout``) and its cast of bidders, good and bad.
It must never be used for production trust: every private key here is written
UNENCRYPTED (mode 0600) and every name says "Dev". Production CAs and the token-held
platform keys are created elsewhere; ``issue_platform_certs`` only certifies the token
keys' public halves with the dev platform root.

Layout under ``directory``::

    DEVELOPMENT-PKI-DO-NOT-USE-IN-PRODUCTION.txt
    platform/dev-platform-root.pem, .key.pem    "Sealed Bid Dev Platform Root"
    platform/server.pem, .key.pem               TLS server: localhost, 127.0.0.1, ::1
    platform/operator.pem, .key.pem             mTLS client, OU=operator
    platform/observer.pem, .key.pem             mTLS client, OU=observer (not an operator)
    officers/officer-<n>.pem, .key.pem          opening officers 1..3: RSA, mTLS client,
                                                OU=opening-officer, keyEncipherment (their
                                                quorum shares are encrypted to them)
    platform/<platform-key-name>.pem            from issue_platform_certs
    bidder-ca/dev-bidder-root.pem, .key.pem, .crl
    bidder-ca/dev-bidder-issuing.pem, .key.pem, .crl
    bidder-ca/rogue-ca.pem, .key.pem            NOT in the trust store
    bidder-ca/dev-bidder-authority.pem, .key.pem  mTLS client, OU=ca-authority, issued by
                                                the issuing CA: pushes the CA's CRLs
    bidder-ca/rogue-authority.pem, .key.pem     the same, issued by the rogue CA
    bidders/<name>/key.pem, cert.pem, chain.pem (chain: issuing CA, then root)
    trust/dev-bidder-ca/...                     ca_bridge.trust_store layout
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealed_bid.crypto.certs import (
    CertificatePublicKey,
    CertProfile,
    ca_profile,
    issue_certificate,
    signing_profile,
    tls_client_profile,
    tls_server_profile,
)
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.errors import ConfigError

BIDDER_CA_ID = "dev-bidder-ca"
GOOD_BIDDERS = ("alpha", "beta", "gamma", "delta")
BAD_BIDDERS = ("revoked", "expired", "not_yet_valid", "wrong_key_usage", "untrusted")
PLATFORM_KEY_NAMES = ("platform-receipt", "platform-tender-ca", "platform-audit")
OFFICERS = ("officer-1", "officer-2", "officer-3")
_OFFICER_NAMES = {
    "officer-1": "Officer One",
    "officer-2": "Officer Two",
    "officer-3": "Officer Three",
}
DEV_ORGANISATION = "Sealed Bid Dev"

_MARKER = "DEVELOPMENT-PKI-DO-NOT-USE-IN-PRODUCTION.txt"
_CRL_BASE = "http://127.0.0.1/dev-bidder-ca"

_ROOT_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyKind = Literal["rsa", "ec"]


@dataclass(frozen=True)
class _BidderSpec:
    company: str
    credit_code: str
    key: KeyKind


# Credit codes are well-formed USCCs (valid GB 32100 check character), see
# ca_bridge.identity. Bad bidders get their own codes so a test can tell them apart.
_BIDDERS: dict[str, _BidderSpec] = {
    "alpha": _BidderSpec("Alpha Construction Co., Ltd.", "91410200MA00000013", "rsa"),
    "beta": _BidderSpec("Beta Engineering Co., Ltd.", "91410200MA00000026", "ec"),
    "gamma": _BidderSpec("Gamma Supplies Co., Ltd.", "91410200MA00000039", "rsa"),
    "delta": _BidderSpec("Delta Road Works Co., Ltd.", "91410200MA0000004C", "rsa"),
    "revoked": _BidderSpec("Revoked Trading Co., Ltd.", "91410200MA0000005F", "ec"),
    "expired": _BidderSpec("Expired Materials Co., Ltd.", "91410200MA0000006J", "ec"),
    "not_yet_valid": _BidderSpec("Future Works Co., Ltd.", "91410200MA0000007M", "ec"),
    "wrong_key_usage": _BidderSpec("Cipher Only Co., Ltd.", "91410200MA0000008Q", "rsa"),
    "untrusted": _BidderSpec("Rogue Bidder Co., Ltd.", "91410200MA0000009U", "ec"),
}


@dataclass(frozen=True)
class KeyPairFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class BidderFiles:
    name: str
    company: str
    credit_code: str
    key: Path
    cert: Path
    chain: Path
    """The CA certificates a signer sends along: issuing CA, then root (rogue CA for
    ``untrusted``)."""


@dataclass(frozen=True)
class DevPki:
    directory: Path
    platform_root: KeyPairFiles
    server: KeyPairFiles
    operator: KeyPairFiles
    observer: KeyPairFiles
    bidder_root: KeyPairFiles
    bidder_issuing: KeyPairFiles
    rogue_ca: KeyPairFiles
    bidder_authority: KeyPairFiles
    """The dev bidder CA's authority (``TrustService`` on the authority port): a TLS client
    certificate with OU=ca-authority, issued by the Dev Bidder Issuing CA."""
    rogue_authority: KeyPairFiles
    """The same role under the rogue CA, which is not in the trust store."""
    bidder_root_crl: Path
    bidder_issuing_crl: Path
    bidders: Mapping[str, BidderFiles]
    officers: Mapping[str, KeyPairFiles]
    """Opening officers for quorum tenders (``OFFICERS``)."""
    trust_dir: Path
    """Read with ``ca_bridge.trust_store.TrustStore.from_directory``."""

    def platform_cert(self, name: str) -> Path:
        """Where ``issue_platform_certs`` puts the certificate of token key ``name``."""
        if name not in PLATFORM_KEY_NAMES:
            raise ValueError(f"unknown platform key {name!r}")
        return self.directory / "platform" / f"{name}.pem"


def make_dev_pki(directory: Path, now: datetime) -> DevPki:
    """Create (or overwrite) the whole development PKI under ``directory``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    pki = _layout(directory)
    for sub in ("platform", "bidder-ca", "bidders", "trust"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / _MARKER).write_text(
        "This directory is a DEVELOPMENT PKI made by sealed_bid.devpki.\n"
        "Its private keys are unencrypted. Never trust it outside development.\n",
        encoding="utf-8",
    )
    ca_from, ca_until = now - timedelta(days=1100), now + timedelta(days=3650)

    # --- Platform: root, TLS server, operator and observer clients ---------------------
    platform_key = new_dev_key("ec")
    platform_root = self_signed_root(platform_key, dev_name("Sealed Bid Dev Platform Root"), now)
    write_key_pair(pki.platform_root, platform_key, platform_root)
    platform = SoftwareSigner(platform_key, platform_root)
    localhost = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    for files, subject, profile in (
        (
            pki.server,
            dev_name("localhost", "server"),
            tls_server_profile(("localhost",), localhost),
        ),
        (pki.operator, dev_name("Operator One", "operator"), tls_client_profile()),
        (pki.observer, dev_name("Observer One", "observer"), tls_client_profile()),
    ):
        key = new_dev_key("ec")
        cert = issue_certificate(
            platform,
            subject,
            key.public_key(),
            now - timedelta(hours=1),
            now + timedelta(days=825),
            None,
            profile,
        )
        write_key_pair(files, key, cert)

    # --- Bidder PKI: root -> issuing CA -> bidders; a rogue CA outside the trust store --
    root_key = new_dev_key("rsa")
    root = self_signed_root(root_key, _bidder_ca_name("Dev Bidder Root CA"), now)
    write_key_pair(pki.bidder_root, root_key, root)
    issuing_key = new_dev_key("rsa")
    issuing = issue_certificate(
        SoftwareSigner(root_key, root),
        _bidder_ca_name("Dev Bidder Issuing CA"),
        issuing_key.public_key(),
        ca_from,
        ca_until,
        None,
        CertProfile(
            key_usage=frozenset({"key_cert_sign", "crl_sign"}),
            ca=True,
            path_length=0,
            crl_distribution_urls=(f"{_CRL_BASE}/root.crl",),
        ),
    )
    write_key_pair(pki.bidder_issuing, issuing_key, issuing)
    rogue_key = new_dev_key("ec")
    rogue = self_signed_root(rogue_key, _bidder_ca_name("Rogue CA"), now)
    write_key_pair(pki.rogue_ca, rogue_key, rogue)

    issuing_signer = SoftwareSigner(issuing_key, issuing)
    rogue_signer = SoftwareSigner(rogue_key, rogue)
    good = signing_profile(crl_distribution_urls=(f"{_CRL_BASE}/issuing.crl",))
    hour, day, year = timedelta(hours=1), timedelta(days=1), timedelta(days=365)
    windows = {
        "expired": (now - 2 * year, now - day),
        "not_yet_valid": (now + 2 * day, now + year),
    }
    revoked_serial = 0
    for name, spec in _BIDDERS.items():
        bidder = pki.bidders[name]
        key = new_dev_key(spec.key)
        start, end = windows.get(name, (now - day, now + 2 * year))
        profile = good
        if name == "wrong_key_usage":
            profile = CertProfile(key_usage=frozenset({"key_encipherment"}))
        signer: SoftwareSigner = issuing_signer
        chain: tuple[bytes, ...] = (issuing, root)
        if name == "untrusted":
            signer, chain = rogue_signer, (rogue,)
        cert = issue_certificate(
            signer, _bidder_name(spec), key.public_key(), start, end, None, profile
        )
        write_key_pair(KeyPairFiles(cert=bidder.cert, key=bidder.key), key, cert)
        bidder.chain.write_bytes(b"".join(_pem(der) for der in chain))
        if name == "revoked":
            revoked_serial = x509.load_der_x509_certificate(cert).serial_number

    # --- CRLs: the issuing CA's lists "revoked"; the root's is empty --------------------
    _write_crl(
        pki.bidder_issuing_crl, issuing_key, issuing, now, [(revoked_serial, now - 2 * hour)]
    )
    _write_crl(pki.bidder_root_crl, root_key, root, now, [])

    # --- Trust material for the service -------------------------------------------------
    ca_dir = pki.trust_dir / BIDDER_CA_ID
    for sub in ("anchors", "intermediates", "crls"):
        (ca_dir / sub).mkdir(parents=True, exist_ok=True)
    (ca_dir / "anchors" / "dev-bidder-root.pem").write_bytes(_pem(root))
    (ca_dir / "intermediates" / "dev-bidder-issuing.pem").write_bytes(_pem(issuing))
    (ca_dir / "crls" / "dev-bidder-root.crl").write_bytes(pki.bidder_root_crl.read_bytes())
    (ca_dir / "crls" / "dev-bidder-issuing.crl").write_bytes(pki.bidder_issuing_crl.read_bytes())
    issue_authority_certs(pki, now)
    issue_officer_certs(pki, now)
    return pki


def officer_profile() -> CertProfile:
    """An opening officer: TLS client on the operator port and recipient of an encrypted
    quorum share (keyEncipherment). One key for both keeps the dev set-up small; a real
    deployment may give officers a separate encryption certificate."""
    return CertProfile(
        key_usage=frozenset({"digital_signature", "key_encipherment"}),
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )


def issue_officer_certs(pki: DevPki, now: datetime) -> bool:
    """Issue the opening officers' certificates that are missing (also in a dev PKI made
    before officers existed). Returns whether any was."""
    missing = [
        name
        for name, files in pki.officers.items()
        if not (files.cert.is_file() and files.key.is_file())
    ]
    if not missing:
        return False
    signer = load_signer(pki.platform_root)
    for name in missing:
        files = pki.officers[name]
        files.cert.parent.mkdir(parents=True, exist_ok=True)
        key = new_dev_key("rsa")
        cert = issue_certificate(
            signer,
            dev_name(_OFFICER_NAMES[name], "opening-officer"),
            key.public_key(),
            now - timedelta(hours=1),
            now + timedelta(days=825),
            None,
            officer_profile(),
        )
        write_key_pair(files, key, cert)
    return True


def issue_authority_certs(pki: DevPki, now: datetime) -> bool:
    """Issue the CA-authority client certificates (``bidder_authority``, ``rogue_authority``)
    that are missing, e.g. in a dev PKI made before they existed. Returns whether any was."""
    missing = [
        (files, ca, chain)
        for files, ca, chain in (
            (pki.bidder_authority, pki.bidder_issuing, True),
            (pki.rogue_authority, pki.rogue_ca, False),
        )
        if not (files.cert.is_file() and files.key.is_file())
    ]
    for files, ca, with_issuer in missing:
        signer = load_signer(ca)
        chain = (signer.certificate_der,) if with_issuer else ()
        _write_authority(files, signer, chain, now)
    return bool(missing)


def refresh_dev_crls(pki: DevPki, now: datetime) -> bool:
    """Re-issue the dev CRLs (same entries, next number) when they expire within a day,
    also in the trust store, so a long-lived dev set-up keeps accepting bids. Returns
    whether anything was re-issued. (Real CRLs come from the CAs: issue 4's sync job.)"""
    changed = False
    pairs = ((pki.bidder_issuing_crl, pki.bidder_issuing), (pki.bidder_root_crl, pki.bidder_root))
    for crl_path, ca in pairs:
        crl = x509.load_der_x509_crl(crl_path.read_bytes())
        next_update = crl.next_update_utc
        if next_update is not None and next_update > now + timedelta(days=1):
            continue
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        ca_der = x509.load_pem_x509_certificate(ca.cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        revoked = [(entry.serial_number, entry.revocation_date_utc) for entry in crl]
        _write_crl(crl_path, load_dev_key(ca.key), ca_der, now, revoked, number + 1)
        trust_copy = pki.trust_dir / BIDDER_CA_ID / "crls" / crl_path.name
        trust_copy.write_bytes(crl_path.read_bytes())
        changed = True
    return changed


def load_dev_pki(directory: Path) -> DevPki:
    """The paths of a dev PKI made earlier by ``make_dev_pki``; checks the files exist."""
    pki = _layout(directory)
    required = [
        pki.directory / _MARKER,
        pki.bidder_root_crl,
        pki.bidder_issuing_crl,
        pki.trust_dir / BIDDER_CA_ID / "anchors" / "dev-bidder-root.pem",
    ]
    for pair in (
        pki.platform_root,
        pki.server,
        pki.operator,
        pki.observer,
        pki.bidder_root,
        pki.bidder_issuing,
        pki.rogue_ca,
    ):
        required += [pair.cert, pair.key]
    for bidder in pki.bidders.values():
        required += [bidder.key, bidder.cert, bidder.chain]
    missing = [str(p) for p in required if not p.is_file()]
    if missing:
        raise ConfigError(
            f"no complete development PKI in {directory}; create it with make_dev_pki",
            missing=missing,
        )
    return pki


def load_signer(files: KeyPairFiles | BidderFiles) -> SoftwareSigner:
    """A ``Signer`` over a dev PKI key and its certificate (a CA, a client, a bidder)."""
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    return SoftwareSigner(load_dev_key(files.key), cert.public_bytes(serialization.Encoding.DER))


def issue_platform_certs(
    pki: DevPki, public_keys: Mapping[str, CertificatePublicKey], now: datetime
) -> dict[str, Path]:
    """Certify token-held platform keys with the dev platform root; return their paths."""
    profiles: dict[str, CertProfile] = {
        "platform-receipt": signing_profile(),
        "platform-tender-ca": ca_profile(path_length=0),
        "platform-audit": CertProfile(key_usage=frozenset({"digital_signature"})),
    }
    unknown = set(public_keys) - set(profiles)
    if unknown:
        raise ValueError(f"unknown platform keys: {sorted(unknown)}")
    signer = load_signer(pki.platform_root)
    written: dict[str, Path] = {}
    for name, public_key in public_keys.items():
        der = issue_certificate(
            signer,
            dev_name(name, "platform"),
            public_key,
            now - timedelta(hours=1),
            now + timedelta(days=5 * 365),
            None,
            profiles[name],
        )
        path = pki.platform_cert(name)
        path.write_bytes(_pem(der))
        written[name] = path
    return written


def _layout(directory: Path) -> DevPki:
    platform, ca = directory / "platform", directory / "bidder-ca"

    def pair(folder: Path, stem: str) -> KeyPairFiles:
        return KeyPairFiles(cert=folder / f"{stem}.pem", key=folder / f"{stem}.key.pem")

    bidders = {
        name: BidderFiles(
            name=name,
            company=spec.company,
            credit_code=spec.credit_code,
            key=directory / "bidders" / name / "key.pem",
            cert=directory / "bidders" / name / "cert.pem",
            chain=directory / "bidders" / name / "chain.pem",
        )
        for name, spec in _BIDDERS.items()
    }
    return DevPki(
        directory=directory,
        platform_root=pair(platform, "dev-platform-root"),
        server=pair(platform, "server"),
        operator=pair(platform, "operator"),
        observer=pair(platform, "observer"),
        bidder_root=pair(ca, "dev-bidder-root"),
        bidder_issuing=pair(ca, "dev-bidder-issuing"),
        rogue_ca=pair(ca, "rogue-ca"),
        bidder_authority=pair(ca, "dev-bidder-authority"),
        rogue_authority=pair(ca, "rogue-authority"),
        bidder_root_crl=ca / "dev-bidder-root.crl",
        bidder_issuing_crl=ca / "dev-bidder-issuing.crl",
        bidders=MappingProxyType(bidders),
        officers=MappingProxyType({name: pair(directory / "officers", name) for name in OFFICERS}),
        trust_dir=directory / "trust",
    )


def new_dev_key(kind: KeyKind) -> PrivateKey:
    # RSA-2048 / P-256 only: the dev PKI must stay fast; strength is not its point.
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def dev_name(common_name: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANISATION)]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _bidder_ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dev Bidder CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _bidder_name(spec: _BidderSpec) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.company),
            x509.NameAttribute(NameOID.COMMON_NAME, spec.company),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, spec.credit_code),
        ]
    )


def _write_authority(
    files: KeyPairFiles, issuer: SoftwareSigner, chain: tuple[bytes, ...], now: datetime
) -> None:
    """A CA authority's TLS client certificate (OU=ca-authority, clientAuth). The cert
    file holds the chain below the root, as a TLS client sends it."""
    key = new_dev_key("ec")
    issuer_name = x509.load_der_x509_certificate(issuer.certificate_der).subject
    common_name = issuer_name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    subject = x509.Name(
        [
            *issuer_name.get_attributes_for_oid(NameOID.COUNTRY_NAME),
            *issuer_name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ca-authority"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Authority of the {common_name!s}"),
        ]
    )
    cert = issue_certificate(
        issuer,
        subject,
        key.public_key(),
        now - timedelta(hours=1),
        now + timedelta(days=825),
        None,
        tls_client_profile(),
    )
    write_key_pair(files, key, cert)
    files.cert.write_bytes(b"".join(_pem(der) for der in (cert, *chain)))


def self_signed_root(key: PrivateKey, name: x509.Name, now: datetime) -> bytes:
    """A root, made with cryptography's builder: its key is in memory, so it can."""
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before((now - timedelta(days=1100)).replace(microsecond=0))
        .not_valid_after((now + timedelta(days=3650)).replace(microsecond=0))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ROOT_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _write_crl(
    path: Path,
    key: PrivateKey,
    issuer_der: bytes,
    now: datetime,
    revoked: list[tuple[int, datetime]],
    number: int = 1,
) -> None:
    issuer = x509.load_der_x509_certificate(issuer_der)
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        # An hour back so that validation "now" (and a demo clock a little behind) sees
        # a CRL that was already issued.
        .last_update((now - timedelta(hours=1)).replace(microsecond=0))
        .next_update((now + timedelta(days=7)).replace(microsecond=0))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(when.replace(microsecond=0))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    crl = builder.sign(key, hashes.SHA256())
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER))


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def write_key_pair(files: KeyPairFiles, key: PrivateKey, cert_der: bytes) -> None:
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    files.cert.write_bytes(_pem(cert_der))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # development only: see the module docstring
    )
    # Create with 0600 directly (no window with a umask-default mode), and chmod in case
    # the file existed from an earlier run with another mode.
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(files.key, 0o600)


def load_dev_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an RSA or EC private key")
    return key
