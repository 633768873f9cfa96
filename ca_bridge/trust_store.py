"""The trust store: per accepted CA, its trust anchors, intermediates and CRLs (all DER).

Directory layout read by ``TrustStore.from_directory`` (one sub-directory per CA id)::

    <dir>/<ca-id>/anchors/*.pem|*.crt|*.cer|*.der        trust anchors (at least one)
    <dir>/<ca-id>/intermediates/*.pem|*.crt|*.cer|*.der  optional
    <dir>/<ca-id>/crls/*.crl|*.pem|*.der                 optional

A PEM file may hold several certificates/CRLs; a DER file holds one. A CA id is the
directory name: lower-case letters, digits, '-' and '_' (it is stored in bid records).
Other files and directories starting with '.' are ignored.

It owns loading and parsing once; it must never fetch anything from the network and
never fall back to a system trust list: a CA that is not in the store is not trusted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from ca_bridge.errors import CertificateMalformed, TrustStoreError

CA_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_CERT_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der"})
_CRL_SUFFIXES = frozenset({".crl", ".pem", ".der"})


@dataclass(frozen=True)
class CaMaterial:
    """What the store knows about one accepted CA. All values are DER."""

    anchors: tuple[bytes, ...]
    intermediates: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not self.anchors:
            raise TrustStoreError("a CA needs at least one trust anchor")
        for der in (*self.anchors, *self.intermediates):
            parse_certificate(der)
        for der in self.crls:
            parse_crl(der)


@dataclass(frozen=True)
class TrustStore:
    cas: Mapping[str, CaMaterial]

    def __post_init__(self) -> None:
        for ca_id in self.cas:
            if not CA_ID_PATTERN.match(ca_id):
                raise TrustStoreError(f"invalid CA id {ca_id!r}", ca_id=ca_id)
        # A read-only view, so a store handed to many threads cannot be changed by one.
        object.__setattr__(self, "cas", MappingProxyType(dict(self.cas)))

    def ca_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.cas))

    def material(self, ca_id: str) -> CaMaterial:
        try:
            return self.cas[ca_id]
        except KeyError:
            raise TrustStoreError(f"unknown CA id {ca_id!r}", ca_id=ca_id) from None

    @classmethod
    def from_directory(cls, path: Path) -> TrustStore:
        """Load the layout described in the module docstring."""
        if not path.is_dir():
            raise TrustStoreError(f"trust directory {path} does not exist", path=str(path))
        cas: dict[str, CaMaterial] = {}
        for ca_dir in sorted(p for p in path.iterdir() if p.is_dir()):
            if ca_dir.name.startswith("."):
                continue
            if not CA_ID_PATTERN.match(ca_dir.name):
                raise TrustStoreError(
                    f"{ca_dir} is not a valid CA id directory (use a-z, 0-9, '-', '_')",
                    path=str(ca_dir),
                )
            anchors = _read_all(ca_dir / "anchors", _CERT_SUFFIXES, "CERTIFICATE")
            if not anchors:
                raise TrustStoreError(
                    f"CA {ca_dir.name!r} has no trust anchor in {ca_dir / 'anchors'}",
                    ca_id=ca_dir.name,
                )
            try:
                cas[ca_dir.name] = CaMaterial(
                    anchors=anchors,
                    intermediates=_read_all(
                        ca_dir / "intermediates", _CERT_SUFFIXES, "CERTIFICATE"
                    ),
                    crls=_read_all(ca_dir / "crls", _CRL_SUFFIXES, "X509 CRL"),
                )
            except CertificateMalformed as exc:
                raise TrustStoreError(
                    f"CA {ca_dir.name!r}: {exc.message}", ca_id=ca_dir.name
                ) from exc
        return cls(cas=cas)


def parse_certificate(der: bytes) -> asn1_x509.Certificate:
    """Parse DER X.509 strictly (forcing a full parse), or raise CertificateMalformed."""
    try:
        cert = asn1_x509.Certificate.load(der, strict=True)
        _ = cert.native  # asn1crypto parses lazily; force every field now
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateMalformed(
            "a certificate is not valid DER X.509; send the certificate as issued by your CA"
        ) from exc
    return cert


def parse_crl(der: bytes) -> asn1_crl.CertificateList:
    try:
        crl = asn1_crl.CertificateList.load(der, strict=True)
        _ = crl.native
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateMalformed("a CRL is not valid DER") from exc
    return crl


def _read_all(directory: Path, suffixes: frozenset[str], pem_type: str) -> tuple[bytes, ...]:
    if not directory.is_dir():
        return ()
    found: list[bytes] = []
    for file in sorted(directory.iterdir()):
        if file.name.startswith(".") or not file.is_file():
            continue
        if file.suffix.lower() not in suffixes:
            continue
        data = file.read_bytes()
        if pem.detect(data):
            for object_type, _headers, der in pem.unarmor(data, multiple=True):
                if object_type != pem_type:
                    raise TrustStoreError(
                        f"{file}: expected PEM {pem_type!r}, found {object_type!r}",
                        path=str(file),
                    )
                found.append(der)
        else:
            found.append(data)
    return tuple(found)
