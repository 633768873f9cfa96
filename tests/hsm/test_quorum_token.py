"""A quorum tender's key lives on a token of its own, created while the service runs,
under a PIN nobody stores; only that PIN opens it, in this process or after a restart."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from sealed_bid.config import Settings
from sealed_bid.errors import KeyTransportFailed, ShareInvalid, TokenError
from sealed_bid.hsm.cryptoki import Cryptoki
from sealed_bid.hsm.quorum_token import (
    MIN_PIN_CHARS,
    QuorumKey,
    QuorumTokens,
    quorum_token_label,
)
from sealed_bid.hsm.softhsm import token_dir
from sealed_bid.hsm.token import RECEIPT_KEY, Token, tender_key_label

from .conftest import REPO_ROOT, RunPython

pytestmark = pytest.mark.token

OAEP_SHA1 = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303 - the only OAEP hash SoftHSM decrypts
    algorithm=hashes.SHA1(),  # noqa: S303
    label=None,
)


@dataclass(frozen=True)
class Tender:
    tender_id: str
    pin: str
    key: QuorumKey


def _new_tender_id(name: str) -> str:
    return f"Q-{name}-{secrets.token_hex(4)}"


def _new_pin() -> str:
    return secrets.token_hex(32)  # as sealed_bid.domain.shares.new_pin


@pytest.fixture(scope="module")
def quorum(token: Token, hsm_settings: Settings) -> QuorumTokens:
    """Created after the platform token is open and logged in, as in the service."""
    return QuorumTokens(hsm_settings)


def _create(quorum: QuorumTokens, name: str) -> Tender:
    tender_id, pin = _new_tender_id(name), _new_pin()
    return Tender(tender_id, pin, quorum.create(tender_id, pin))


@pytest.fixture(scope="module")
def tender_a(quorum: QuorumTokens) -> Tender:
    return _create(quorum, "a")


@pytest.fixture(scope="module")
def tender_b(quorum: QuorumTokens) -> Tender:
    return _create(quorum, "b")


def _platform_signs(token: Token) -> None:
    data = secrets.token_bytes(32)
    signature = token.sign(RECEIPT_KEY, data)
    token.public_key(RECEIPT_KEY).verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


# --- Creation -------------------------------------------------------------------------------
def test_a_tender_gets_a_token_labelled_by_its_id_with_its_own_key(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    assert tender_a.key.token_label == quorum_token_label(tender_a.tender_id)
    assert tender_a.key.token_label.startswith("q-")
    assert len(tender_a.key.token_label.encode()) <= 32
    assert tender_a.key.token_serial
    assert tender_a.key.public_key.key_size == 3072
    assert quorum.exists(tender_a.tender_id)
    assert not quorum.exists(_new_tender_id("never-created"))


def test_labels_fit_pkcs11_for_the_longest_tender_ids() -> None:
    longest = "T" + "x" * 63
    assert len(quorum_token_label(longest)) <= 32
    assert quorum_token_label(longest) != quorum_token_label("T" + "x" * 62 + "y")
    with pytest.raises(TokenError):
        quorum_token_label("../not an id")


def test_two_tenders_get_two_tokens(
    quorum: QuorumTokens, tender_a: Tender, tender_b: Tender
) -> None:
    assert tender_a.key.token_label != tender_b.key.token_label
    assert tender_a.key.token_serial != tender_b.key.token_serial
    assert tender_a.key.public_key.public_numbers() != tender_b.key.public_key.public_numbers()
    lib = pkcs11.lib(str(quorum.module_path))
    slot_a = lib.get_token(token_label=tender_a.key.token_label).slot.slot_id
    slot_b = lib.get_token(token_label=tender_b.key.token_label).slot.slot_id
    assert slot_a != slot_b


def test_a_second_creation_for_the_same_tender_is_refused(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    with pytest.raises(TokenError, match="already has a quorum token"):
        quorum.create(tender_a.tender_id, _new_pin())
    # The first token and its PIN are untouched.
    with quorum.open(tender_a.tender_id, tender_a.pin) as session:
        assert session.public_key().public_numbers() == tender_a.key.public_key.public_numbers()


def test_a_short_pin_is_refused_before_any_token_is_made(quorum: QuorumTokens) -> None:
    tender_id = _new_tender_id("short")
    with pytest.raises(TokenError, match="at least") as refused:
        quorum.create(tender_id, "1" * (MIN_PIN_CHARS - 1))
    assert "1" * (MIN_PIN_CHARS - 1) not in str(refused.value)
    assert not quorum.exists(tender_id)


def test_a_creation_that_fails_half_way_leaves_nothing_in_the_tenders_way(
    quorum: QuorumTokens, token: Token
) -> None:
    """SoftHSM refuses a user PIN over 255 bytes at C_InitPIN, after C_InitToken: the
    half-made token is wiped and relabelled, so the tender can be created again."""
    tender_id = _new_tender_id("retry")
    too_long = "p" * 256
    with pytest.raises(TokenError) as refused:
        quorum.create(tender_id, too_long)
    assert too_long not in str(refused.value)
    assert not quorum.exists(tender_id)
    pin = _new_pin()
    key = quorum.create(tender_id, pin)
    with quorum.open(tender_id, pin) as session:
        assert session.public_key().public_numbers() == key.public_key.public_numbers()
    _platform_signs(token)


# --- Opening --------------------------------------------------------------------------------
def test_the_key_decrypts_what_was_encrypted_to_its_public_key(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    content_key = secrets.token_bytes(32)
    encrypted = tender_a.key.public_key.encrypt(content_key, OAEP_SHA1)
    with quorum.open(tender_a.tender_id, tender_a.pin) as session:
        assert session.decrypt_key(encrypted, "sha1") == content_key
        assert session.uses == 1


def test_refusals_of_the_key_are_key_transport_failures_and_are_counted(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    encrypted = tender_a.key.public_key.encrypt(secrets.token_bytes(32), OAEP_SHA1)
    tampered = bytes([encrypted[0] ^ 1]) + encrypted[1:]
    with quorum.open(tender_a.tender_id, tender_a.pin) as session:
        with pytest.raises(KeyTransportFailed):
            session.decrypt_key(tampered, "sha1")
        with pytest.raises(KeyTransportFailed):
            session.decrypt_key(encrypted, "md5")
        with pytest.raises(KeyTransportFailed):
            session.decrypt_key(encrypted, "sha256")  # SoftHSM opens OAEP with SHA-1 only
        assert session.uses == 3


def test_a_wrong_pin_is_refused_as_invalid_shares_and_never_locks_softhsm(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    """SoftHSM has no lockout (a hardware HSM would lock after a few attempts)."""
    wrong = _new_pin()
    for _ in range(5):
        with pytest.raises(ShareInvalid, match="do not unlock") as refused:
            quorum.open(tender_a.tender_id, wrong)
        assert wrong not in str(refused.value)
    with pytest.raises(ShareInvalid):
        quorum.open(tender_a.tender_id, "")
    with pytest.raises(ShareInvalid):
        quorum.open(tender_a.tender_id, "\udcff" * 20)  # not even UTF-8
    with quorum.open(tender_a.tender_id, tender_a.pin) as session:
        assert not session.key_destroyed()


def test_one_tenders_pin_does_not_open_another_tenders_token(
    quorum: QuorumTokens, tender_a: Tender, tender_b: Tender
) -> None:
    with pytest.raises(ShareInvalid):
        quorum.open(tender_a.tender_id, tender_b.pin)
    with pytest.raises(ShareInvalid):
        quorum.open(tender_b.tender_id, tender_a.pin)


def test_an_unknown_tender_or_a_wrong_serial_is_a_token_error(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    with pytest.raises(TokenError, match="no quorum token"):
        quorum.open(_new_tender_id("unknown"), _new_pin())
    with pytest.raises(TokenError, match="serial"):
        quorum.open(tender_a.tender_id, tender_a.pin, token_serial="0000000000000000")
    with quorum.open(
        tender_a.tender_id, tender_a.pin, token_serial=tender_a.key.token_serial
    ) as session:
        assert session.token_label == tender_a.key.token_label


def test_a_token_is_open_once_per_process(quorum: QuorumTokens, tender_a: Tender) -> None:
    """Login is per process and token: a second login could not check the PIN, and the
    first logout would end both."""
    session = quorum.open(tender_a.tender_id, tender_a.pin)
    try:
        with pytest.raises(TokenError, match="already open"):
            quorum.open(tender_a.tender_id, tender_a.pin)
    finally:
        session.close()
    session.close()  # idempotent
    with pytest.raises(TokenError, match="closed"):
        session.decrypt_key(b"\x00" * 384, "sha1")
    with quorum.open(tender_a.tender_id, tender_a.pin) as again:
        assert not again.key_destroyed()


def test_after_closing_the_token_is_logged_out(quorum: QuorumTokens, tender_a: Tender) -> None:
    with quorum.open(tender_a.tender_id, tender_a.pin):
        pass
    lib = pkcs11.lib(str(quorum.module_path))
    with lib.get_token(token_label=tender_a.key.token_label).open() as public_session:
        private_objects = list(
            public_session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY})
        )
    assert private_objects == []


def test_the_platform_token_keeps_its_login_throughout(quorum: QuorumTokens, token: Token) -> None:
    _platform_signs(token)
    tender = _create(quorum, "platform")
    _platform_signs(token)
    encrypted = tender.key.public_key.encrypt(secrets.token_bytes(32), OAEP_SHA1)
    with quorum.open(tender.tender_id, tender.pin) as session:
        _platform_signs(token)
        session.decrypt_key(encrypted, "sha1")
        _platform_signs(token)
        session.destroy_key()
    _platform_signs(token)


def test_a_session_can_be_shared_by_threads(quorum: QuorumTokens, tender_b: Tender) -> None:
    keys = [secrets.token_bytes(32) for _ in range(4)]
    encrypted = [tender_b.key.public_key.encrypt(k, OAEP_SHA1) for k in keys]
    results: list[bytes] = []
    with quorum.open(tender_b.tender_id, tender_b.pin) as session:

        def work(index: int) -> None:
            for _ in range(10):
                results.append(session.decrypt_key(encrypted[index], "sha1"))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert session.uses == 40
    assert sorted(results) == sorted(keys * 10)


# --- The key's protection ---------------------------------------------------------------------
def test_the_private_key_is_sensitive_never_extractable_and_cannot_sign(
    quorum: QuorumTokens, tender_a: Tender
) -> None:
    with quorum.open(tender_a.tender_id, tender_a.pin) as session:
        attributes = session.key_attributes()
    assert attributes.label == tender_key_label(tender_a.tender_id)
    assert attributes.object_class == "PRIVATE_KEY" and attributes.key_type == "RSA"
    assert attributes.token and attributes.private
    assert attributes.sensitive and attributes.always_sensitive
    assert not attributes.extractable and attributes.never_extractable
    assert not attributes.modifiable
    assert not attributes.sign and not attributes.derive
    assert attributes.decrypt and attributes.unwrap


def test_the_so_pin_is_not_the_user_pin_and_nothing_on_disk_holds_either(
    quorum: QuorumTokens, tender_a: Tender, hsm_settings: Settings
) -> None:
    lib = pkcs11.lib(str(quorum.module_path))
    session = lib.get_token(token_label=tender_a.key.token_label).open(rw=True)
    handle: int = session.handle  # type: ignore[attr-defined]
    try:
        with pytest.raises(pkcs11.exceptions.PinIncorrect):
            Cryptoki.of(quorum.module_path).login(handle, pkcs11.UserType.SO, tender_a.pin)
    finally:
        session.close()
    pin = tender_a.pin.encode()
    for path in hsm_settings.state_dir.rglob("*"):
        if path.is_file():
            assert pin not in path.read_bytes(), path


def _token_directory(settings: Settings, serial: str) -> Path:
    # SoftHSM names a token's directory by a UUID whose last 16 hex digits are its serial.
    found = [d for d in token_dir(settings).iterdir() if d.name.replace("-", "")[-16:] == serial]
    assert len(found) == 1
    return found[0]


def test_softhsm_keeps_the_private_key_object_encrypted_on_disk(
    quorum: QuorumTokens, tender_a: Tender, hsm_settings: Settings
) -> None:
    """The public key object is stored in clear; the private key object (CKA_PRIVATE)
    is encrypted under the token key that only the user PIN unwraps: not even its
    modulus or its label can be found in the files."""
    modulus = tender_a.key.public_key.public_numbers().n.to_bytes(384, "big")
    label = tender_key_label(tender_a.tender_id).encode()
    objects = [
        p.read_bytes()
        for p in _token_directory(hsm_settings, tender_a.key.token_serial).glob("*.object")
        if p.name != "token.object"
    ]
    assert len(objects) == 2  # the two halves of the key pair
    in_clear = [data for data in objects if modulus[:64] in data]
    assert len(in_clear) == 1 and label in in_clear[0]  # the public half
    private_object = next(data for data in objects if modulus[:64] not in data)
    assert label not in private_object


# --- Destruction ----------------------------------------------------------------------------
def test_a_destroyed_key_is_gone_and_decrypts_nothing(quorum: QuorumTokens) -> None:
    tender = _create(quorum, "destroy")
    encrypted = tender.key.public_key.encrypt(secrets.token_bytes(32), OAEP_SHA1)
    with quorum.open(tender.tender_id, tender.pin) as session:
        session.decrypt_key(encrypted, "sha1")
        session.destroy_key()
        assert session.key_destroyed()
        with pytest.raises(TokenError, match="no key"):
            session.decrypt_key(encrypted, "sha1")
        session.destroy_key()  # idempotent
    with quorum.open(tender.tender_id, tender.pin) as session:
        assert session.key_destroyed()
        # A second session shares the login and sees every object on the token: none.
        lib = pkcs11.lib(str(quorum.module_path))
        with lib.get_token(token_label=tender.key.token_label).open() as raw:
            assert list(raw.get_objects()) == []


# --- Another process --------------------------------------------------------------------------
def _run_with_stdin(code: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """Like the ``run_python`` fixture, but the secret goes through stdin, never argv."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("SOFTHSM2_CONF", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_a_restarted_process_opens_the_token_with_the_pin(
    tender_a: Tender, hsm_settings: Settings
) -> None:
    """A fresh interpreter reads the token directory at C_Initialize, so it sees the
    token this process created; with the PIN from stdin it decrypts, with another it
    is refused."""
    content_key = secrets.token_bytes(32)
    encrypted = tender_a.key.public_key.encrypt(content_key, OAEP_SHA1)
    code = f"""
import sys
from pathlib import Path
from sealed_bid.config import Settings
from sealed_bid.errors import ShareInvalid
from sealed_bid.hsm.quorum_token import QuorumTokens
pin = sys.stdin.readline().strip()
tokens = QuorumTokens(Settings(state_dir=Path({str(hsm_settings.state_dir)!r})))
try:
    tokens.open({tender_a.tender_id!r}, pin[::-1])
except ShareInvalid:
    print("refused")
with tokens.open({tender_a.tender_id!r}, pin) as session:
    print(session.decrypt_key(bytes.fromhex({encrypted.hex()!r}), "sha1").hex())
"""
    result = _run_with_stdin(code, tender_a.pin + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", content_key.hex()]
    assert tender_a.pin not in result.stdout + result.stderr


def test_os_locking_lets_threads_share_softhsm(
    run_python: RunPython, hsm_settings: Settings, token: Token
) -> None:
    """python-pkcs11 initialises SoftHSM without locking; re-initialised with
    CKF_OS_LOCKING_OK, four threads on four sessions sign side by side (without it the
    same run crashes the interpreter: docs/adr/0013)."""
    code = f"""
import threading
from pathlib import Path
import pkcs11
from sealed_bid.config import Settings
from sealed_bid.hsm.cryptoki import Cryptoki
from sealed_bid.hsm.module import find_module
from sealed_bid.hsm.softhsm import prepare_environment
from sealed_bid.hsm.token import RECEIPT_KEY, Token
settings = Settings(state_dir=Path({str(hsm_settings.state_dir)!r}), token_label="hsm-tests")
module = find_module(settings)
prepare_environment(settings)
pkcs11.lib(str(module))
Cryptoki.of(module).reinitialize_with_os_locking()
tokens = [Token.open(settings) for _ in range(4)]
done = []
def work(token):
    for _ in range(200):
        token.sign(RECEIPT_KEY, b"x")
        token.public_key(RECEIPT_KEY)
    done.append(1)
threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
for t in threads: t.start()
for t in threads: t.join()
print(len(done))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
