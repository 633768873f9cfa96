"""``sealed-bid ca ...``: the operator's trust-store tools, run in subprocesses on a
temporary SQLite database (``--state-dir``), without the token."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ca_bridge.db_trust_store import DbTrustStore
from ca_bridge.store_models import create_trust_schema
from sealed_bid.devpki import BIDDER_CA_ID, DevPki, make_dev_pki
from sealed_bid.storage.db import create_schema, make_engine
from tests.cli.conftest import cli_env, require_ok, run_cli

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_dev_pki(tmp_path_factory.mktemp("ca-cli-pki"), datetime.now(UTC))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


def ca(state: Path, *args: str | Path) -> tuple[int, str, str]:
    """``sealed-bid ca ARGS --state-dir STATE`` with a PKCS#11 module that does not exist:
    a command that tried to open the token would fail."""
    env = cli_env(SEALED_BID_PKCS11_MODULE="/nonexistent/libpkcs11-must-not-load.so")
    result = run_cli("ca", *args, "--state-dir", state, env=env)
    return result.returncode, result.stdout, result.stderr


def ok(state: Path, *args: str | Path) -> str:
    code, out, err = ca(state, *args)
    assert code == 0, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    return out


def listed(state: Path) -> list[dict[str, object]]:
    return list(json.loads(ok(state, "list", "--all", "--json")))


def _sha_of_pem(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


def _issuing_crl(pki: DevPki, number: int, this_update: datetime, out: Path) -> Path:
    issuing = x509.load_pem_x509_certificate(pki.bidder_issuing.cert.read_bytes())
    key = serialization.load_pem_private_key(pki.bidder_issuing.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    out.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return out


@pytest.fixture
def imported(state: Path, pki: DevPki) -> Path:
    ok(state, "import-dir", pki.trust_dir, "--operator", "alice")
    return state


def test_import_dir_then_list_shows_the_ca_its_anchor_and_crls_without_a_token(
    imported: Path, pki: DevPki
) -> None:
    text = ok(imported, "list")

    assert BIDDER_CA_ID in text
    assert _sha_of_pem(pki.bidder_root.cert) in text
    assert "anchor       active" in text
    assert text.count("  crl ") == 2


def test_an_anchor_needs_a_second_operator_through_the_cli(imported: Path, pki: DevPki) -> None:
    sha = _sha_of_pem(pki.rogue_ca.cert)
    out = ok(imported, "add-anchor", "--ca", "second-ca", "--cert", pki.rogue_ca.cert,
             "--name", "Second CA", "--operator", "alice")  # fmt: skip
    assert f"pending anchor {sha}" in out

    code, _, err = ca(imported, "approve", sha, "--operator", "alice")
    assert code == 2
    assert "ANCHOR_APPROVAL_SAME_OPERATOR" in err
    second = next(c for c in listed(imported) if c["ca_id"] == "second-ca")
    assert [c["status"] for c in second["certificates"]] == ["pending"]  # type: ignore[union-attr]

    ok(imported, "approve", sha, "--operator", "bob")
    second = next(c for c in listed(imported) if c["ca_id"] == "second-ca")
    (anchor,) = second["certificates"]  # type: ignore[misc]
    assert (anchor["status"], anchor["added_by"], anchor["approved_by"]) == (
        "active",
        "alice",
        "bob",
    )


def test_add_crl_accepts_a_newer_crl_and_refuses_an_older_one_with_CRL_NOT_NEWER(
    imported: Path, pki: DevPki, tmp_path: Path
) -> None:
    held = x509.load_der_x509_crl(pki.bidder_issuing_crl.read_bytes())
    number = held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    newer = _issuing_crl(pki, number + 1, held.last_update_utc + timedelta(minutes=5),
                         tmp_path / "newer.crl")  # fmt: skip
    older = _issuing_crl(pki, number - 1, held.last_update_utc - timedelta(days=1),
                         tmp_path / "older.crl")  # fmt: skip

    assert f"added CRL #{number + 1}" in ok(
        imported, "add-crl", "--ca", BIDDER_CA_ID, "--crl", newer, "--operator", "sync-admin"
    )
    code, _, err = ca(imported, "add-crl", "--ca", BIDDER_CA_ID, "--crl", older,
                      "--operator", "sync-admin")  # fmt: skip
    assert code == 2
    assert "CRL_NOT_NEWER" in err


def test_add_crl_for_an_unknown_ca_is_refused_with_CA_NOT_FOUND(
    imported: Path, pki: DevPki
) -> None:
    code, _, err = ca(imported, "add-crl", "--ca", "no-such-ca", "--crl", pki.bidder_issuing_crl,
                      "--operator", "alice")  # fmt: skip

    assert code == 2
    assert "CA_NOT_FOUND" in err


def test_remove_takes_a_ca_out_of_the_trust_store(imported: Path) -> None:
    ok(imported, "remove", "--ca", BIDDER_CA_ID, "--operator", "carol")

    assert "no CAs in the trust store" in ok(imported, "list")
    (removed,) = listed(imported)
    assert (removed["status"], removed["certificates"]) == ("removed", [])


def test_remove_cert_takes_one_certificate_out(imported: Path, pki: DevPki) -> None:
    sha = _sha_of_pem(pki.bidder_issuing.cert)

    ok(imported, "remove", "--cert", sha, "--operator", "carol")

    (ca_entry,) = listed(imported)
    roles = [c["role"] for c in ca_entry["certificates"]]  # type: ignore[union-attr]
    assert roles == ["anchor"]


def test_cli_changes_are_in_the_trust_change_log_waiting_for_the_audit_log(
    imported: Path,
) -> None:
    ok(imported, "remove", "--ca", BIDDER_CA_ID, "--operator", "carol")
    engine = make_engine(f"sqlite:///{imported / 'sealed-bid.db'}")
    try:
        changes = DbTrustStore(engine).changes()
    finally:
        engine.dispose()

    assert changes[-1].event == "trust.ca_removed"
    assert changes[-1].actor == "carol"
    assert not any(c.audited for c in changes)


def test_show_validation_of_an_unknown_bid_says_so(state: Path) -> None:
    # (A real bid's record and its offline re-check: tests/e2e/test_validation_evidence.py.)
    engine = make_engine(f"sqlite:///{state / 'sealed-bid.db'}")
    try:
        create_schema(engine)  # a service database, without that bid
        create_trust_schema(engine)
    finally:
        engine.dispose()
    code, _, err = ca(state, "show-validation", "B-404")

    assert code == 2
    assert "BID_NOT_FOUND" in err


def test_ca_commands_need_no_pkcs11_module_and_no_token(state: Path, pki: DevPki) -> None:
    # The helper points SEALED_BID_PKCS11_MODULE at a file that does not exist; the
    # service itself refuses to start like that, the ca commands do not care.
    result = run_cli(
        "serve", "--state-dir", state,
        env=cli_env(SEALED_BID_PKCS11_MODULE="/nonexistent/libpkcs11-must-not-load.so"),
    )  # fmt: skip
    assert result.returncode != 0
    assert "pkcs11_module /nonexistent/libpkcs11-must-not-load.so does not exist" in result.stderr

    require_ok(
        run_cli("ca", "import-dir", pki.trust_dir, "--operator", "alice", "--state-dir", state,
                env=cli_env(SEALED_BID_PKCS11_MODULE="/nonexistent/libpkcs11-must-not-load.so"))
    )  # fmt: skip
