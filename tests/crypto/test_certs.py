"""issue_certificate: certificates signed through the Signer protocol, checked by
cryptography and by the openssl CLI."""

from __future__ import annotations

import ipaddress
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealed_bid.crypto.certs import (
    CertProfile,
    ca_profile,
    issue_certificate,
    signing_profile,
    tls_server_profile,
)
from sealed_bid.crypto.signer import SignatureAlgorithm
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.errors import ConfigError

NOW = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
ROOT_KEY_USAGE = x509.KeyUsage(
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


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def self_signed_root(key: PrivateKey, common_name: str) -> bytes:
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(name(common_name))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ROOT_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_root(rsa_key: rsa.RSAPrivateKey) -> SoftwareSigner:
    return SoftwareSigner(rsa_key, self_signed_root(rsa_key, "RSA Test Root"))


@pytest.fixture(scope="module")
def ec_root(ec_key: ec.EllipticCurvePrivateKey) -> SoftwareSigner:
    return SoftwareSigner(ec_key, self_signed_root(ec_key, "EC Test Root"))


@pytest.fixture(scope="module")
def leaf_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_pem(path: Path, *ders: bytes) -> Path:
    path.write_bytes(
        b"".join(
            x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in ders
        )
    )
    return path


def openssl_verify(tmp_path: Path, root: bytes, leaf: bytes, *untrusted: bytes) -> None:
    args = [
        "openssl",
        "verify",
        "-x509_strict",
        "-CAfile",
        str(write_pem(tmp_path / "root.pem", root)),
    ]
    if untrusted:
        args += ["-untrusted", str(write_pem(tmp_path / "untrusted.pem", *untrusted))]
    args.append(str(write_pem(tmp_path / "leaf.pem", leaf)))
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("issuer_fixture", ["rsa_root", "ec_root"])
def test_issued_certificate_carries_the_profile_and_key_identifiers(
    issuer_fixture: str, request: pytest.FixtureRequest, leaf_key: ec.EllipticCurvePrivateKey
) -> None:
    issuer: SoftwareSigner = request.getfixturevalue(issuer_fixture)
    profile = tls_server_profile(
        ("localhost",), (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    )

    der = issue_certificate(
        issuer, name("server"), leaf_key.public_key(), NOW, NOW + timedelta(days=90), 4242, profile
    )

    cert = x509.load_der_x509_certificate(der)
    issuer_cert = x509.load_der_x509_certificate(issuer.certificate_der)
    cert.verify_directly_issued_by(issuer_cert)
    assert cert.serial_number == 4242
    assert cert.version == x509.Version.v3
    assert cert.public_key() == leaf_key.public_key()
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    key_usage = ext.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not key_usage.value.key_encipherment
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == issuer_ski.value.digest


@pytest.mark.parametrize(
    ("issuer_fixture", "algorithm"),
    [("rsa_root", "sha256_rsa"), ("ec_root", "sha256_ecdsa")],
)
def test_signature_algorithm_follows_the_issuer_signer(
    issuer_fixture: str,
    algorithm: SignatureAlgorithm,
    request: pytest.FixtureRequest,
    leaf_key: ec.EllipticCurvePrivateKey,
) -> None:
    issuer: SoftwareSigner = request.getfixturevalue(issuer_fixture)

    der = issue_certificate(
        issuer,
        name("leaf"),
        leaf_key.public_key(),
        NOW,
        NOW + timedelta(days=1),
        None,
        signing_profile(),
    )

    cert = x509.load_der_x509_certificate(der)
    expected = {"sha256_rsa": "1.2.840.113549.1.1.11", "sha256_ecdsa": "1.2.840.10045.4.3.2"}
    assert issuer.signature_algorithm == algorithm
    assert cert.signature_algorithm_oid.dotted_string == expected[algorithm]
    if algorithm == "sha256_rsa":
        # RFC 4055: sha256WithRSAEncryption carries an explicit NULL parameter.
        assert cert.signature_algorithm_parameters == padding.PKCS1v15()
        assert der.count(bytes.fromhex("300d06092a864886f70d01010b0500")) == 2


@pytest.mark.openssl
@pytest.mark.parametrize("root_fixture", ["rsa_root", "ec_root"])
def test_openssl_accepts_a_chain_of_root_intermediate_and_leaf(
    root_fixture: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    leaf_key: ec.EllipticCurvePrivateKey,
) -> None:
    root: SoftwareSigner = request.getfixturevalue(root_fixture)
    intermediate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    intermediate = issue_certificate(
        root,
        name("Intermediate"),
        intermediate_key.public_key(),
        NOW,
        NOW + timedelta(days=365),
        None,
        ca_profile(path_length=0),
    )
    leaf = issue_certificate(
        SoftwareSigner(intermediate_key, intermediate),
        name("Leaf"),
        leaf_key.public_key(),
        NOW,
        NOW + timedelta(days=30),
        None,
        signing_profile(crl_distribution_urls=("http://127.0.0.1/ca.crl",)),
    )

    openssl_verify(tmp_path, root.certificate_der, leaf, intermediate)
    basic = x509.load_der_x509_certificate(intermediate).extensions.get_extension_for_class(
        x509.BasicConstraints
    )
    assert basic.value.ca and basic.value.path_length == 0
    points = x509.load_der_x509_certificate(leaf).extensions.get_extension_for_class(
        x509.CRLDistributionPoints
    )
    assert points.value[0].full_name == [x509.UniformResourceIdentifier("http://127.0.0.1/ca.crl")]


def test_random_serials_are_positive_and_distinct(
    rsa_root: SoftwareSigner, leaf_key: ec.EllipticCurvePrivateKey
) -> None:
    serials = {
        x509.load_der_x509_certificate(
            issue_certificate(
                rsa_root,
                name("leaf"),
                leaf_key.public_key(),
                NOW,
                NOW + timedelta(days=1),
                None,
                signing_profile(),
            )
        ).serial_number
        for _ in range(3)
    }

    assert len(serials) == 3
    assert all(0 < s < 2**159 for s in serials)


def test_times_drop_fractions_and_use_generalized_time_from_2050(
    ec_root: SoftwareSigner, leaf_key: ec.EllipticCurvePrivateKey
) -> None:
    until = datetime(2060, 1, 1, tzinfo=UTC)

    der = issue_certificate(
        ec_root, name("leaf"), leaf_key.public_key(), NOW, until, None, signing_profile()
    )

    cert = x509.load_der_x509_certificate(der)
    assert cert.not_valid_before_utc == NOW.replace(microsecond=0)
    assert cert.not_valid_after_utc == until
    assert b"\x18\x0f20600101000000Z" in der  # GeneralizedTime, as RFC 5280 requires


def test_signer_whose_key_does_not_match_its_certificate_is_refused(
    ec_root: SoftwareSigner, rsa_key: rsa.RSAPrivateKey, leaf_key: ec.EllipticCurvePrivateKey
) -> None:
    class WrongCertificateSigner:
        """A real misconfiguration: key A configured with the certificate of key B."""

        certificate_der = ec_root.certificate_der
        signature_algorithm: SignatureAlgorithm = "sha256_ecdsa"

        def sign(self, data: bytes) -> bytes:
            return other_key.sign(data, ec.ECDSA(hashes.SHA256()))

    other_key = ec.generate_private_key(ec.SECP256R1())

    with pytest.raises(ConfigError, match="do not belong together"):
        issue_certificate(
            WrongCertificateSigner(),
            name("leaf"),
            leaf_key.public_key(),
            NOW,
            NOW + timedelta(days=1),
            None,
            signing_profile(),
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_usage": frozenset()},
        {"key_usage": frozenset({"key_cert_sign"})},  # keyCertSign without cA
        {"key_usage": frozenset({"crl_sign"}), "ca": True},  # cA without keyCertSign
        {"key_usage": frozenset({"digital_signature"}), "path_length": 0},
        {"key_usage": frozenset({"key_cert_sign"}), "ca": True, "path_length": -1},
        {"key_usage": frozenset({"sign_everything"})},
        {
            "key_usage": frozenset({"digital_signature"}),
            "extended_key_usage": (
                ExtendedKeyUsageOID.CLIENT_AUTH,
                ExtendedKeyUsageOID.CLIENT_AUTH,
            ),
        },
    ],
)
def test_inconsistent_profiles_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CertProfile(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("not_before", "not_after", "serial"),
    [
        (NOW.replace(tzinfo=None), NOW + timedelta(days=1), None),
        (NOW, NOW, None),
        (NOW, NOW + timedelta(days=1), 0),
        (NOW, NOW + timedelta(days=1), 2**159),
    ],
    ids=["naive-time", "empty-validity", "zero-serial", "serial-too-long"],
)
def test_invalid_arguments_are_refused(
    ec_root: SoftwareSigner,
    leaf_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
) -> None:
    with pytest.raises(ValueError):
        issue_certificate(
            ec_root,
            name("x"),
            leaf_key.public_key(),
            not_before,
            not_after,
            serial,
            signing_profile(),
        )


def test_eddsa_subject_keys_are_refused(ec_root: SoftwareSigner) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()

    with pytest.raises(ValueError, match="EdDSA"):
        issue_certificate(
            ec_root,
            name("x"),
            key,  # type: ignore[arg-type]
            NOW,
            NOW + timedelta(days=1),
            None,
            signing_profile(),
        )
