"""The development PKI: files, modes, subjects, profiles, CRLs, and openssl agreement."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealed_bid.devpki import (
    BAD_BIDDERS,
    BIDDER_CA_ID,
    GOOD_BIDDERS,
    PLATFORM_KEY_NAMES,
    DevPki,
    KeyPairFiles,
    issue_platform_certs,
    load_dev_pki,
    make_dev_pki,
)
from sealed_bid.errors import ConfigError

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_dev_pki(tmp_path_factory.mktemp("devpki"), NOW)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    assert len(values) == 1
    return str(values[0].value)


def all_key_pairs(pki: DevPki) -> list[KeyPairFiles]:
    pairs = [
        pki.platform_root,
        pki.server,
        pki.operator,
        pki.observer,
        pki.bidder_root,
        pki.bidder_issuing,
        pki.rogue_ca,
    ]
    pairs += [KeyPairFiles(cert=b.cert, key=b.key) for b in pki.bidders.values()]
    return pairs


def test_every_file_exists_and_every_private_key_is_owner_only(pki: DevPki) -> None:
    for pair in all_key_pairs(pki):
        assert pair.cert.is_file()
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600, pair.key
    for bidder in pki.bidders.values():
        assert bidder.chain.is_file()
    assert pki.bidder_root_crl.is_file() and pki.bidder_issuing_crl.is_file()
    assert (pki.directory / "DEVELOPMENT-PKI-DO-NOT-USE-IN-PRODUCTION.txt").is_file()


def test_all_bidders_are_there(pki: DevPki) -> None:
    assert set(pki.bidders) == set(GOOD_BIDDERS) | set(BAD_BIDDERS)


def test_load_dev_pki_finds_what_make_dev_pki_made(pki: DevPki) -> None:
    assert load_dev_pki(pki.directory) == pki


def test_load_dev_pki_of_an_empty_directory_says_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make_dev_pki"):
        load_dev_pki(tmp_path)


def test_tls_server_certificate_names_localhost_for_server_auth(pki: DevPki) -> None:
    server = cert(pki.server.cert)

    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    server.verify_directly_issued_by(cert(pki.platform_root.cert))


@pytest.mark.parametrize(
    ("role", "unit", "common_name"),
    [("operator", "operator", "Operator One"), ("observer", "observer", "Observer One")],
)
def test_client_certificates_carry_their_role_as_organisational_unit(
    pki: DevPki, role: str, unit: str, common_name: str
) -> None:
    client = cert(getattr(pki, role).cert)

    assert attr(client.subject, NameOID.ORGANIZATION_NAME) == "Sealed Bid Dev"
    assert attr(client.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == unit
    assert attr(client.subject, NameOID.COMMON_NAME) == common_name
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    client.verify_directly_issued_by(cert(pki.platform_root.cert))


def test_bidder_subject_has_company_and_credit_code(pki: DevPki) -> None:
    for bidder in pki.bidders.values():
        subject = cert(bidder.cert).subject
        assert attr(subject, NameOID.ORGANIZATION_NAME) == bidder.company
        assert attr(subject, NameOID.COMMON_NAME) == bidder.company
        assert attr(subject, NameOID.SERIAL_NUMBER) == bidder.credit_code


def test_bidder_key_types_are_as_documented(pki: DevPki) -> None:
    for name in ("alpha", "gamma", "delta"):
        key = cert(pki.bidders[name].cert).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    beta = cert(pki.bidders["beta"].cert).public_key()
    assert isinstance(beta, ec.EllipticCurvePublicKey) and beta.curve.name == "secp256r1"


def test_good_bidders_sign_and_point_to_a_crl(pki: DevPki) -> None:
    for name in GOOD_BIDDERS:
        bidder = cert(pki.bidders[name].cert)
        usage = bidder.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and usage.content_commitment
        points = bidder.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert points[0].full_name is not None
        assert str(points[0].full_name[0].value).startswith("http://127.0.0.1/")


def test_bad_bidders_are_bad_in_exactly_their_way(pki: DevPki) -> None:
    expired = cert(pki.bidders["expired"].cert)
    assert expired.not_valid_after_utc < NOW
    future = cert(pki.bidders["not_yet_valid"].cert)
    assert future.not_valid_before_utc > NOW + timedelta(days=1)
    usage = cert(pki.bidders["wrong_key_usage"].cert).extensions.get_extension_for_class(
        x509.KeyUsage
    )
    assert usage.value.key_encipherment
    assert not (usage.value.digital_signature or usage.value.content_commitment)
    untrusted = cert(pki.bidders["untrusted"].cert)
    assert attr(untrusted.issuer, NameOID.COMMON_NAME) == "Rogue CA"


def test_issuing_crl_lists_revoked_and_is_current_for_a_week(pki: DevPki) -> None:
    crl = x509.load_der_x509_crl(pki.bidder_issuing_crl.read_bytes())
    revoked_serial = cert(pki.bidders["revoked"].cert).serial_number

    assert crl.is_signature_valid(cert(pki.bidder_issuing.cert).public_key())  # type: ignore[arg-type]
    assert [r.serial_number for r in crl] == [revoked_serial]
    assert crl.next_update_utc == NOW + timedelta(days=7)
    assert crl.last_update_utc is not None and crl.last_update_utc <= NOW


def test_root_crl_is_empty_and_signed_by_the_root(pki: DevPki) -> None:
    crl = x509.load_der_x509_crl(pki.bidder_root_crl.read_bytes())

    assert crl.is_signature_valid(cert(pki.bidder_root.cert).public_key())  # type: ignore[arg-type]
    assert len(crl) == 0


def test_trust_directory_holds_the_bidder_ca_only(pki: DevPki) -> None:
    ca_dir = pki.trust_dir / BIDDER_CA_ID

    assert [p.name for p in pki.trust_dir.iterdir()] == [BIDDER_CA_ID]
    assert cert(next((ca_dir / "anchors").iterdir())) == cert(pki.bidder_root.cert)
    assert cert(next((ca_dir / "intermediates").iterdir())) == cert(pki.bidder_issuing.cert)
    assert len(list((ca_dir / "crls").iterdir())) == 2


def test_platform_certificates_for_token_keys_have_their_profiles(pki: DevPki) -> None:
    keys = {
        name: rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        for name in PLATFORM_KEY_NAMES
    }

    paths = issue_platform_certs(pki, keys, NOW)

    root = cert(pki.platform_root.cert)
    issued = {name: cert(path) for name, path in paths.items()}
    for name, certificate in issued.items():
        certificate.verify_directly_issued_by(root)
        assert certificate.public_key() == keys[name]
        assert paths[name] == pki.platform_cert(name)
    receipt = issued["platform-receipt"].extensions.get_extension_for_class(x509.KeyUsage).value
    assert receipt.digital_signature and receipt.content_commitment
    tender_ca = issued["platform-tender-ca"].extensions
    basic = tender_ca.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0
    ca_usage = tender_ca.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign
    audit = issued["platform-audit"].extensions.get_extension_for_class(x509.KeyUsage).value
    assert audit.digital_signature and not audit.key_cert_sign


def test_platform_certificates_refuse_unknown_key_names(pki: DevPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()

    with pytest.raises(ValueError, match="unknown platform keys"):
        issue_platform_certs(pki, {"platform-everything": key}, NOW)


def openssl_verify(pki: DevPki, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl", "verify", "-x509_strict", "-crl_check_all",
            "-CAfile", str(pki.bidder_root.cert),
            "-untrusted", str(pki.bidder_issuing.cert),
            "-CRLfile", str(pki.bidder_issuing_crl),
            "-CRLfile", str(pki.bidder_root_crl),
            str(pki.bidders[name].cert),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.openssl
@pytest.mark.parametrize("name", GOOD_BIDDERS)
def test_openssl_accepts_good_bidders_with_full_crl_checks(pki: DevPki, name: str) -> None:
    result = openssl_verify(pki, name)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.openssl
def test_openssl_sees_the_revoked_bidder_as_revoked(pki: DevPki) -> None:
    result = openssl_verify(pki, "revoked")

    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr


def test_dev_crls_are_reissued_with_the_same_entries_before_they_expire(tmp_path: Path) -> None:
    from sealed_bid.devpki import refresh_dev_crls

    start = datetime(2026, 11, 1, tzinfo=UTC)
    pki = make_dev_pki(tmp_path / "pki", start)
    before = x509.load_der_x509_crl(pki.bidder_issuing_crl.read_bytes())
    assert not refresh_dev_crls(pki, start + timedelta(days=1))
    assert refresh_dev_crls(pki, start + timedelta(days=6, hours=12))
    after = x509.load_der_x509_crl(pki.bidder_issuing_crl.read_bytes())
    assert [e.serial_number for e in after] == [e.serial_number for e in before]
    assert [e.revocation_date_utc for e in after] == [e.revocation_date_utc for e in before]
    assert after.next_update_utc is not None
    assert after.next_update_utc > start + timedelta(days=13)
    trust_copy = pki.trust_dir / "dev-bidder-ca" / "crls" / pki.bidder_issuing_crl.name
    assert trust_copy.read_bytes() == pki.bidder_issuing_crl.read_bytes()
