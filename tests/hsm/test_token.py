"""The token keeps its keys inside and does only what each key is for."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import PKCS11Error

from sealed_bid.config import Settings
from sealed_bid.errors import KeyTransportFailed, TokenError
from sealed_bid.hsm.token import (
    AUDIT_KEY,
    BIDDER_TAG_KEY,
    PLATFORM_SIGNING_KEYS,
    RECEIPT_KEY,
    TENDER_CA_KEY,
    Token,
    key_id,
    tender_key_label,
)

from .conftest import RunPython

pytestmark = pytest.mark.token

OAEP_SHA1 = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303 - the only OAEP hash SoftHSM decrypts
    algorithm=hashes.SHA1(),  # noqa: S303
    label=None,
)


@pytest.fixture(scope="module")
def tender_id(token: Token) -> Iterator[str]:
    tender = "T-decrypt-" + secrets.token_hex(4)
    token.generate_tender_key(tender)
    yield tender
    if token.tender_key_exists(tender):
        token.destroy_tender_key(tender)


@pytest.fixture
def raw_session(token: Token) -> Iterator[object]:
    """A second, independent python-pkcs11 session on the same token (it shares the
    process's login), to ask the token directly what the Token class would never ask."""
    lib = pkcs11.lib(str(token.module_path))
    session = lib.get_token(token_label=token.label).open(rw=True)
    try:
        yield session
    finally:
        session.close()


def _raw_private_key(session: object, label: str) -> object:
    return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)  # type: ignore[attr-defined]


# --- Key protection -----------------------------------------------------------------------
@pytest.mark.parametrize("label", [RECEIPT_KEY, TENDER_CA_KEY, AUDIT_KEY, BIDDER_TAG_KEY])
def test_platform_keys_are_sensitive_and_never_extractable(token: Token, label: str) -> None:
    attributes = token.key_attributes(label)
    assert attributes.token and attributes.private
    assert attributes.sensitive and attributes.always_sensitive
    assert not attributes.extractable and attributes.never_extractable
    assert not attributes.modifiable
    assert attributes.sign
    assert not attributes.decrypt and not attributes.unwrap and not attributes.derive


def test_platform_key_types(token: Token) -> None:
    assert {token.key_attributes(label).key_type for label in PLATFORM_SIGNING_KEYS} == {"RSA"}
    assert token.key_attributes(BIDDER_TAG_KEY).key_type == "GENERIC_SECRET"


def test_tender_key_is_sensitive_decrypt_only(token: Token, tender_id: str) -> None:
    attributes = token.key_attributes(tender_key_label(tender_id))
    assert attributes.sensitive and attributes.never_extractable and not attributes.extractable
    assert attributes.decrypt and attributes.unwrap
    assert not attributes.sign and not attributes.derive and not attributes.modifiable


@pytest.mark.parametrize("label_of", [lambda t: RECEIPT_KEY, tender_key_label])
def test_token_refuses_to_reveal_the_private_exponent(
    raw_session: object, tender_id: str, label_of: object
) -> None:
    label = label_of(tender_id)  # type: ignore[operator]
    key = _raw_private_key(raw_session, label)
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.PRIVATE_EXPONENT]  # type: ignore[index]
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.PRIME_1]  # type: ignore[index]


def test_token_refuses_to_make_a_tender_key_a_signing_key(
    raw_session: object, tender_id: str
) -> None:
    key = _raw_private_key(raw_session, tender_key_label(tender_id))
    with pytest.raises(PKCS11Error):
        key[Attribute.SIGN] = True  # type: ignore[index]


def test_tender_key_cannot_sign_on_the_token(
    token: Token, hsm_settings: Settings, tender_id: str, tmp_path: Path
) -> None:
    # pkcs11-tool is an independent client: the refusal comes from the token itself.
    # (pkcs11-tool picks the signing key by CKA_ID only, not by label.)
    data = tmp_path / "data"
    data.write_bytes(b"anything")
    env = dict(os.environ, SOFTHSM2_CONF=str(hsm_settings.softhsm_conf_path))
    result = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            str(token.module_path),
            "--token-label",
            token.label,
            "--login",
            "--pin",
            hsm_settings.pin_path.read_text().strip(),
            "--sign",
            "-m",
            "SHA256-RSA-PKCS",
            "--type",
            "privkey",
            "--id",
            key_id(tender_key_label(tender_id)).hex(),
            "-i",
            str(data),
            "-o",
            str(tmp_path / "sig"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CKR_KEY_FUNCTION_NOT_PERMITTED" in result.stderr


def test_sign_refuses_tender_labels(token: Token, tender_id: str) -> None:
    with pytest.raises(TokenError):
        token.sign(tender_key_label(tender_id), b"data")


# --- Platform signatures and HMAC ---------------------------------------------------------
@pytest.mark.parametrize("label", PLATFORM_SIGNING_KEYS)
def test_platform_signatures_verify_with_cryptography(token: Token, label: str) -> None:
    data = b"receipt for bid-123"
    signature = token.sign(label, data)
    public_key = token.public_key(label)
    assert public_key.key_size == 3072
    public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_platform_signature_does_not_verify_other_data(token: Token) -> None:
    signature = token.sign(RECEIPT_KEY, b"original")
    with pytest.raises(InvalidSignature):
        token.public_key(RECEIPT_KEY).verify(
            signature, b"tampered", padding.PKCS1v15(), hashes.SHA256()
        )


def test_platform_keys_are_distinct(token: Token) -> None:
    moduli = {token.public_key(label).public_numbers().n for label in PLATFORM_SIGNING_KEYS}
    assert len(moduli) == len(PLATFORM_SIGNING_KEYS)


def test_hmac_is_stable_and_keyed(token: Token) -> None:
    first = token.hmac(BIDDER_TAG_KEY, b"CN=Bidder One")
    assert token.hmac(BIDDER_TAG_KEY, b"CN=Bidder One") == first
    assert len(first) == 32
    assert token.hmac(BIDDER_TAG_KEY, b"CN=Bidder Two") != first
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"CN=Bidder One")
    assert first != digest.finalize()


def test_ensure_platform_keys_is_idempotent(token: Token) -> None:
    before = {label: token.public_key(label).public_numbers() for label in PLATFORM_SIGNING_KEYS}
    tag_before = token.hmac(BIDDER_TAG_KEY, b"x")
    token.ensure_platform_keys()
    after = {label: token.public_key(label).public_numbers() for label in PLATFORM_SIGNING_KEYS}
    assert after == before
    assert token.hmac(BIDDER_TAG_KEY, b"x") == tag_before


def test_concurrent_signing_from_many_threads(token: Token) -> None:
    public_key = token.public_key(AUDIT_KEY)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                data = f"entry {n}-{i}".encode()
                public_key.verify(
                    token.sign(AUDIT_KEY, data), data, padding.PKCS1v15(), hashes.SHA256()
                )
                token.hmac(BIDDER_TAG_KEY, data)
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_missing_key_is_a_token_error(token: Token) -> None:
    with pytest.raises(TokenError, match="no-such-key"):
        token.sign("no-such-key", b"data")


# --- Tender keys --------------------------------------------------------------------------
def test_tender_key_decrypts_a_software_oaep_sha1_encryption(token: Token, tender_id: str) -> None:
    content_key = secrets.token_bytes(32)
    encrypted = token.tender_public_key(tender_id).encrypt(content_key, OAEP_SHA1)
    assert token.decrypt_tender_key(tender_id, encrypted, "sha1") == content_key


def test_generate_tender_key_returns_the_tender_public_key(token: Token, tender_id: str) -> None:
    public_key = token.tender_public_key(tender_id)
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == 3072
    assert public_key.public_numbers().e == 65537


def test_bad_padding_is_key_transport_failed(token: Token, tender_id: str) -> None:
    with pytest.raises(KeyTransportFailed):
        token.decrypt_tender_key(tender_id, b"\x00" * 384, "sha1")


def test_wrong_tender_key_is_key_transport_failed(token: Token, tender_id: str) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()
    encrypted = other.encrypt(secrets.token_bytes(32), OAEP_SHA1)
    with pytest.raises(KeyTransportFailed):
        token.decrypt_tender_key(tender_id, encrypted, "sha1")


def test_oaep_hash_the_token_cannot_do_is_key_transport_failed(
    token: Token, tender_id: str
) -> None:
    oaep_sha256 = padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )
    encrypted = token.tender_public_key(tender_id).encrypt(secrets.token_bytes(32), oaep_sha256)
    with pytest.raises(KeyTransportFailed):
        token.decrypt_tender_key(tender_id, encrypted, "sha256")
    with pytest.raises(KeyTransportFailed):
        token.decrypt_tender_key(tender_id, encrypted, "md5")


def test_decrypt_tender_key_counts_every_call(token: Token, tender_id: str) -> None:
    before = token.private_key_uses.get(tender_id, 0)
    encrypted = token.tender_public_key(tender_id).encrypt(b"k" * 32, OAEP_SHA1)
    token.decrypt_tender_key(tender_id, encrypted, "sha1")
    with pytest.raises(KeyTransportFailed):
        token.decrypt_tender_key(tender_id, b"\x01" * 384, "sha1")
    assert token.private_key_uses[tender_id] == before + 2


def test_reading_public_parts_does_not_count_as_private_key_use(token: Token) -> None:
    tender = "T-unused-" + secrets.token_hex(4)
    token.generate_tender_key(tender)
    try:
        token.tender_public_key(tender)
        assert token.tender_key_exists(tender)
        token.key_attributes(tender_key_label(tender))
        assert tender not in token.private_key_uses
    finally:
        token.destroy_tender_key(tender)


def test_second_tender_key_is_refused(token: Token, tender_id: str) -> None:
    before = token.tender_public_key(tender_id).public_numbers()
    with pytest.raises(TokenError, match="already has a key"):
        token.generate_tender_key(tender_id)
    assert token.tender_public_key(tender_id).public_numbers() == before


def test_destroy_removes_the_tender_key(token: Token) -> None:
    tender = "T-destroy-" + secrets.token_hex(4)
    token.generate_tender_key(tender)
    assert token.tender_key_exists(tender)
    token.destroy_tender_key(tender)
    assert not token.tender_key_exists(tender)
    with pytest.raises(TokenError):
        token.tender_public_key(tender)
    with pytest.raises(TokenError):
        token.decrypt_tender_key(tender, b"\x00" * 384, "sha1")
    with pytest.raises(TokenError):
        token.destroy_tender_key(tender)


def test_unknown_tender_is_not_there(token: Token) -> None:
    assert not token.tender_key_exists("T-never-created")


def test_invalid_tender_id_is_refused(token: Token) -> None:
    with pytest.raises(TokenError):
        token.tender_key_exists("../platform-receipt")


# --- Login, PINs, processes ---------------------------------------------------------------
def test_wrong_pin_is_a_token_error_without_the_pin(
    token: Token, hsm_settings: Settings, tmp_path: Path
) -> None:
    wrong_pin = "wrong-" + secrets.token_hex(8)
    pin_file = tmp_path / "pin"
    pin_file.write_text(wrong_pin)
    with pytest.raises(TokenError) as caught:
        Token.open(replace(hsm_settings, token_pin_file=str(pin_file)))
    message = str(caught.value)
    assert f"cannot log in to token {hsm_settings.token_label!r}" in message
    assert wrong_pin not in message
    assert hsm_settings.pin_path.read_text().strip() not in message
    # The failed attempt did not disturb the logged-in token.
    token.sign(RECEIPT_KEY, b"still works")


def test_wrong_pin_in_a_fresh_process_is_refused_by_the_token(
    hsm_settings: Settings, tmp_path: Path, run_python: RunPython
) -> None:
    wrong_pin = "wrong-" + secrets.token_hex(8)
    pin_file = tmp_path / "pin"
    pin_file.write_text(wrong_pin)
    result = run_python(
        "from pathlib import Path\n"
        "from sealed_bid.config import Settings\n"
        "from sealed_bid.errors import TokenError\n"
        "from sealed_bid.hsm.token import Token\n"
        f"settings = Settings(state_dir=Path({str(hsm_settings.state_dir)!r}),\n"
        f"    token_label={hsm_settings.token_label!r}, token_pin_file={str(pin_file)!r})\n"
        "try:\n"
        "    Token.open(settings)\n"
        "except TokenError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "cannot log in to token" in result.stdout
    assert wrong_pin not in result.stdout + result.stderr


def test_a_second_process_can_sign_while_the_first_holds_its_session(
    token: Token, hsm_settings: Settings, run_python: RunPython
) -> None:
    result = run_python(
        "from pathlib import Path\n"
        "from sealed_bid.config import Settings\n"
        "from sealed_bid.hsm.token import Token\n"
        f"settings = Settings(state_dir=Path({str(hsm_settings.state_dir)!r}),\n"
        f"    token_label={hsm_settings.token_label!r})\n"
        "with Token.open(settings) as token:\n"
        "    print(token.sign('platform-receipt', b'from another process').hex())\n"
        "    print(token.hmac('platform-bidder-tag', b'CN=Bidder One').hex())\n"
    )
    assert result.returncode == 0, result.stderr
    signature_hex, tag_hex = result.stdout.split()
    token.public_key(RECEIPT_KEY).verify(
        bytes.fromhex(signature_hex), b"from another process", padding.PKCS1v15(), hashes.SHA256()
    )
    assert bytes.fromhex(tag_hex) == token.hmac(BIDDER_TAG_KEY, b"CN=Bidder One")
    token.sign(RECEIPT_KEY, b"the first process still signs")


def test_closing_one_token_does_not_log_out_another(hsm_settings: Settings, token: Token) -> None:
    with Token.open(hsm_settings) as second:
        second.sign(RECEIPT_KEY, b"second")
    # PKCS#11 logout is process-wide; the shared login keeps the first Token working.
    token.sign(RECEIPT_KEY, b"first after second closed")


def test_closed_token_refuses_work(hsm_settings: Settings) -> None:
    opened = Token.open(hsm_settings)
    opened.close()
    opened.close()
    with pytest.raises(TokenError, match="closed"):
        opened.sign(RECEIPT_KEY, b"data")


def test_missing_token_is_a_token_error(hsm_settings: Settings) -> None:
    with pytest.raises(TokenError, match="no token labelled"):
        Token.open(replace(hsm_settings, token_label="no-such-token"))
