"""Issue X.509 certificates with an issuer key reachable only through ``Signer``.

The issuer may be a key on a PKCS#11 token (the tender CA, the platform keys), so this
module never needs a private-key object: it encodes the TBSCertificate with asn1crypto,
has ``Signer.sign`` sign its DER and assembles the certificate (see ADR 0006). Before
returning, it checks the new certificate's signature under the issuer certificate, so a
signer whose key does not match its certificate can never produce a certificate.

It must never choose key usages on its own: every extension comes from the caller's
``CertProfile``; it never issues a v1 certificate or one without SKI/AKI.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealed_bid.crypto.signer import SignatureAlgorithm, Signer
from sealed_bid.errors import ConfigError

KeyUsageName = Literal[
    "digital_signature",
    "non_repudiation",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
]
"""RFC 5280 keyUsage bits, spelled as asn1crypto and pyhanko-certvalidator spell them."""

KEY_USAGE_NAMES: frozenset[str] = frozenset(get_args(KeyUsageName))

CertificatePublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""Subject keys this module certifies (Ed25519/Ed448 are refused: no CMS interop here)."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# 2049-12-31 is the last day RFC 5280 lets UTCTime encode; later dates need GeneralizedTime.
_UTC_TIME_LIMIT = datetime(2050, 1, 1, tzinfo=UTC)

_SIGNATURE_OIDS: dict[SignatureAlgorithm, str] = {
    "sha256_rsa": "sha256_rsa",
    "sha256_ecdsa": "sha256_ecdsa",
}


@dataclass(frozen=True)
class CertProfile:
    """What a certificate may be used for. Validated on construction."""

    key_usage: frozenset[KeyUsageName]
    ca: bool = False
    path_length: int | None = None
    """Only for CA certificates; None means no pathLenConstraint."""
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    extended_key_usage_critical: bool = False
    """Mark extendedKeyUsage critical (RFC 3161 2.3 requires it for a TSA)."""
    san_dns: tuple[str, ...] = ()
    san_ip: tuple[IpAddress, ...] = ()
    crl_distribution_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key_usage:
            raise ValueError("a certificate profile needs at least one key usage")
        unknown = set(self.key_usage) - KEY_USAGE_NAMES
        if unknown:
            raise ValueError(f"unknown key usages: {sorted(unknown)}")
        if self.path_length is not None:
            if not self.ca:
                raise ValueError("path_length is only meaningful for a CA certificate")
            if self.path_length < 0:
                raise ValueError("path_length must not be negative")
        # RFC 5280 4.2.1.3: keyCertSign is asserted exactly when cA is true.
        if self.ca != ("key_cert_sign" in self.key_usage):
            raise ValueError("key_cert_sign must be set for, and only for, CA certificates")
        if len(set(self.extended_key_usage)) != len(self.extended_key_usage):
            raise ValueError("duplicate extended key usage")
        if self.extended_key_usage_critical and not self.extended_key_usage:
            raise ValueError("extended_key_usage_critical needs an extended key usage")


def ca_profile(path_length: int | None = None) -> CertProfile:
    """An issuing CA: keyCertSign + cRLSign."""
    return CertProfile(
        key_usage=frozenset({"key_cert_sign", "crl_sign"}), ca=True, path_length=path_length
    )


def signing_profile(crl_distribution_urls: tuple[str, ...] = ()) -> CertProfile:
    """A document signer (bidders, receipts): digitalSignature + nonRepudiation."""
    return CertProfile(
        key_usage=frozenset({"digital_signature", "non_repudiation"}),
        crl_distribution_urls=crl_distribution_urls,
    )


def tls_server_profile(dns: tuple[str, ...], ips: tuple[IpAddress, ...]) -> CertProfile:
    # digitalSignature only: (EC)DHE key exchange never encrypts to the server key.
    return CertProfile(
        key_usage=frozenset({"digital_signature"}),
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,),
        san_dns=dns,
        san_ip=ips,
    )


def tls_client_profile() -> CertProfile:
    return CertProfile(
        key_usage=frozenset({"digital_signature"}),
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )


def timestamping_profile() -> CertProfile:
    """A time-stamping authority (RFC 3161 2.3): digitalSignature + nonRepudiation and
    exactly one extended key usage, id-kp-timeStamping, marked critical."""
    return CertProfile(
        key_usage=frozenset({"digital_signature", "non_repudiation"}),
        extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
        extended_key_usage_critical=True,
    )


def issue_certificate(
    issuer: Signer,
    subject: x509.Name,
    subject_public_key: CertificatePublicKey,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
    profile: CertProfile,
) -> bytes:
    """Return the DER of a v3 certificate for ``subject_public_key`` signed by ``issuer``.

    ``serial`` None means a random 159-bit serial (RFC 5280 allows 20 octets).
    Raises ``ValueError`` for inconsistent arguments and ``ConfigError`` when the
    issuer's signature does not verify under its own certificate (wrong key or
    certificate configured for that signer).
    """
    if isinstance(subject_public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise ValueError("EdDSA subject keys are not supported")
    if not isinstance(subject_public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("subject key must be an RSA or EC public key")
    start = _whole_seconds(not_before, "not_before")
    end = _whole_seconds(not_after, "not_after")
    if end <= start:
        raise ValueError("not_after must be later than not_before")
    if serial is None:
        serial = x509.random_serial_number()
    if serial <= 0 or serial.bit_length() > 159:
        raise ValueError("serial must be positive and at most 20 octets")

    issuer_cert = x509.load_der_x509_certificate(issuer.certificate_der)
    issuer_asn1 = asn1_x509.Certificate.load(issuer.certificate_der)
    algorithm = _signed_digest_algorithm(issuer.signature_algorithm)
    spki = asn1_keys.PublicKeyInfo.load(
        subject_public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": algorithm,
            # The issuer name is copied byte for byte: re-encoding it could change string
            # types and break name chaining in strict validators.
            "issuer": issuer_asn1.subject.copy(),
            "validity": {"not_before": _time(start), "not_after": _time(end)},
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_public_key_info": spki,
            "extensions": _extensions(profile, spki, issuer_cert),
        }
    )
    tbs_der = tbs.dump()
    signature = issuer.sign(tbs_der)
    certificate = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": _signed_digest_algorithm(issuer.signature_algorithm),
            "signature_value": signature,
        }
    )
    der: bytes = certificate.dump()
    _check_issued_by(der, issuer_cert)
    return der


def _whole_seconds(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    # X.509 times carry no fractions of a second (RFC 5280 4.1.2.5).
    return when.astimezone(UTC).replace(microsecond=0)


def _time(when: datetime) -> asn1_x509.Time:
    if when < _UTC_TIME_LIMIT:
        return asn1_x509.Time({"utc_time": when})
    return asn1_x509.Time({"general_time": when})


def _signed_digest_algorithm(name: SignatureAlgorithm) -> asn1_x509.SignedDigestAlgorithm:
    if name not in _SIGNATURE_OIDS:
        raise ValueError(f"unsupported signature algorithm {name!r}")
    if name == "sha256_rsa":
        # RFC 4055 2.1: sha256WithRSAEncryption carries an explicit NULL parameter.
        return asn1_x509.SignedDigestAlgorithm(
            {"algorithm": _SIGNATURE_OIDS[name], "parameters": asn1_core.Null()}
        )
    # RFC 5758 3.2: ecdsa-with-SHA256 has absent parameters.
    return asn1_x509.SignedDigestAlgorithm({"algorithm": _SIGNATURE_OIDS[name]})


def _extensions(
    profile: CertProfile, spki: asn1_keys.PublicKeyInfo, issuer_cert: x509.Certificate
) -> asn1_x509.Extensions:
    basic: dict[str, object] = {"ca": profile.ca}
    if profile.path_length is not None:
        basic["path_len_constraint"] = profile.path_length
    extensions: list[dict[str, object]] = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": basic},
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": asn1_x509.KeyUsage(set(profile.key_usage)),
        },
        # RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value.
        {"extn_id": "key_identifier", "critical": False, "extn_value": spki.sha1},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": _issuer_key_id(issuer_cert)},
        },
    ]
    if profile.extended_key_usage:
        extensions.append(
            {
                "extn_id": "extended_key_usage",
                "critical": profile.extended_key_usage_critical,
                "extn_value": [oid.dotted_string for oid in profile.extended_key_usage],
            }
        )
    names = [asn1_x509.GeneralName(name="dns_name", value=dns) for dns in profile.san_dns]
    names += [asn1_x509.GeneralName(name="ip_address", value=str(ip)) for ip in profile.san_ip]
    if names:
        extensions.append({"extn_id": "subject_alt_name", "critical": False, "extn_value": names})
    if profile.crl_distribution_urls:
        extensions.append(
            {
                "extn_id": "crl_distribution_points",
                "critical": False,
                "extn_value": [
                    {"distribution_point": {"full_name": [_uri(url)]}}
                    for url in profile.crl_distribution_urls
                ],
            }
        )
    return asn1_x509.Extensions(extensions)


def _uri(url: str) -> asn1_x509.GeneralName:
    return asn1_x509.GeneralName(name="uniform_resource_identifier", value=url)


def _issuer_key_id(issuer_cert: x509.Certificate) -> bytes:
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ski.value.digest
    except x509.ExtensionNotFound:
        # An issuer certificate without SKI (some old roots): derive it the RFC 5280 way
        # so the AKI still matches what validators compute.
        return x509.SubjectKeyIdentifier.from_public_key(issuer_cert.public_key()).digest


def _check_issued_by(der: bytes, issuer_cert: x509.Certificate) -> None:
    issued = x509.load_der_x509_certificate(der)
    try:
        issued.verify_directly_issued_by(issuer_cert)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise ConfigError(
            "the issuer's signature does not verify under its own certificate: the signer's "
            "key and certificate do not belong together; check the key label/certificate",
            issuer=issuer_cert.subject.rfc4514_string(),
        ) from exc
