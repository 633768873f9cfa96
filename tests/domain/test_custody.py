"""The unlock policy chosen at tender creation: scheduled, or a quorum of distinct
officers whose certificates can receive a share and log in to the operator port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealed_bid.domain.custody import (
    SCHEDULED,
    check_officers_authenticate,
    validate_unlock_policy,
)
from sealed_bid.errors import InvalidTender

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ROOT_KEY = ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, ou: str = "opening-officer") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _root(
    cn: str = "Test Operator Root", key: ec.EllipticCurvePrivateKey = _ROOT_KEY
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn, "root"))
        .issuer_name(_name(cn, "root"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


ROOT = _root()


def _officer(
    cn: str,
    *,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = _RSA,
    key_encipherment: bool = True,
    not_after: datetime = NOW + timedelta(days=365),
    issuer: x509.Certificate = ROOT,
) -> bytes:
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(True, False, key_encipherment, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_ROOT_KEY.public_key()),
            critical=False,
        )
        .sign(_ROOT_KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


OFFICERS = tuple(_officer(f"Officer {n}") for n in ("One", "Two", "Three"))


def test_no_officers_and_no_threshold_is_scheduled() -> None:
    assert validate_unlock_policy(0, (), NOW) == SCHEDULED


def test_a_quorum_names_officers_in_order_with_their_share_indices() -> None:
    policy = validate_unlock_policy(2, OFFICERS, NOW)
    assert (policy.kind, policy.threshold, policy.total) == ("quorum", 2, 3)
    assert [o.index for o in policy.officers] == [1, 2, 3]
    assert policy.officers[1].subject == "CN=Officer Two,OU=opening-officer"
    assert policy.officer_by_certificate(OFFICERS[2]) == policy.officers[2]
    assert policy.officer_by_certificate(b"not an officer") is None


@pytest.mark.parametrize(("threshold", "count"), [(1, 3), (4, 3), (0, 3), (2, 0), (2, 1), (17, 17)])
def test_thresholds_outside_two_to_n_are_refused(threshold: int, count: int) -> None:
    certs = tuple(_officer(f"Officer {i}") for i in range(count))
    with pytest.raises(InvalidTender, match="quorum needs"):
        validate_unlock_policy(threshold, certs, NOW)


def test_one_person_cannot_hold_two_shares() -> None:
    with pytest.raises(InvalidTender, match="distinct persons"):
        validate_unlock_policy(2, (OFFICERS[0], OFFICERS[0], OFFICERS[1]), NOW)
    # Two certificates (other keys, other serials) for the same subject: one person.
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    second = _officer("officer one", key=other_key)
    with pytest.raises(InvalidTender, match="distinct persons"):
        validate_unlock_policy(2, (OFFICERS[0], second, OFFICERS[1]), NOW)


def test_officer_certificates_must_be_able_to_receive_a_share() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    for bad, reason in (
        (_officer("EC Officer", key=ec_key), "RSA key"),
        (_officer("Signer Only", key_encipherment=False), "keyEncipherment"),
        (_officer("Expired", not_after=NOW - timedelta(seconds=1)), "not valid now"),
        (b"\x30\x03\x02\x01\x00", "not a DER X.509"),
    ):
        with pytest.raises(InvalidTender, match=reason):
            validate_unlock_policy(2, (OFFICERS[0], bad), NOW)


def test_officers_must_chain_to_the_operator_ca() -> None:
    policy = validate_unlock_policy(2, OFFICERS[:2], NOW)
    root_pem = ROOT.public_bytes(serialization.Encoding.PEM)
    check_officers_authenticate(policy, root_pem, NOW)
    other_name = _root("Another Root")
    same_name_other_key = _root(key=ec.generate_private_key(ec.SECP256R1()))
    for other in (other_name, same_name_other_key):
        with pytest.raises(InvalidTender, match="not issued by the operator CA"):
            check_officers_authenticate(policy, other.public_bytes(serialization.Encoding.PEM), NOW)


def test_officers_must_be_tls_clients() -> None:
    server_only = (
        x509.CertificateBuilder()
        .subject_name(_name("Server Officer"))
        .issuer_name(ROOT.subject)
        .public_key(_RSA.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(_ROOT_KEY, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    policy = validate_unlock_policy(2, (OFFICERS[0], server_only), NOW)
    with pytest.raises(InvalidTender, match="clientAuth"):
        check_officers_authenticate(policy, ROOT.public_bytes(serialization.Encoding.PEM), NOW)
