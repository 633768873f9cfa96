"""The PKCS#11 token: one logged-in session, the platform keys and the tender keys.

Owns every call into the PKCS#11 module. Private and secret keys are generated on the
token as sensitive, never extractable and unmodifiable, and stay there: this module
never reads or exports private key material, never puts a PIN in a message, and uses a
tender private key in exactly one place, ``Token.decrypt_tender_key`` (which the service
calls only after a tender's opening time, and which counts every call).

python-pkcs11 sessions are not thread-safe, so each ``Token`` serialises its session
behind a lock. PKCS#11 login state belongs to the whole process (C_Logout in any session
logs out all of them), so logins are shared between ``Token`` objects of one process
and the last one closed logs out.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac as hmac_module
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    NoSuchToken,
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)

from sealed_bid.config import Settings
from sealed_bid.domain.ids import parse_tender_id
from sealed_bid.errors import ConfigError, KeyTransportFailed, TokenError
from sealed_bid.hsm.cryptoki import Cryptoki
from sealed_bid.hsm.module import find_module
from sealed_bid.hsm.softhsm import prepare_environment

RECEIPT_KEY: Final = "platform-receipt"
TENDER_CA_KEY: Final = "platform-tender-ca"
AUDIT_KEY: Final = "platform-audit"
BIDDER_TAG_KEY: Final = "platform-bidder-tag"
PLATFORM_SIGNING_KEYS: Final = (RECEIPT_KEY, TENDER_CA_KEY, AUDIT_KEY)
"""RSA-3072 sign-only keys (CKM_SHA256_RSA_PKCS)."""
PLATFORM_HMAC_KEYS: Final = (BIDDER_TAG_KEY,)
"""256-bit generic secret keys, sign-only (CKM_SHA256_HMAC)."""

RSA_BITS: Final = 3072
HMAC_KEY_BITS: Final = 256
TENDER_LABEL_PREFIX: Final = "tender:"

OAEP_HASHES: Final[dict[str, tuple[Mechanism, MGF, hashes.HashAlgorithm]]] = {
    # OAEP does not rest on SHA-1's collision resistance; SoftHSM offers nothing else.
    "sha1": (Mechanism.SHA_1, MGF.SHA1, hashes.SHA1()),  # noqa: S303
    "sha224": (Mechanism.SHA224, MGF.SHA224, hashes.SHA224()),
    "sha256": (Mechanism.SHA256, MGF.SHA256, hashes.SHA256()),
    "sha384": (Mechanism.SHA384, MGF.SHA384, hashes.SHA384()),
    "sha512": (Mechanism.SHA512, MGF.SHA512, hashes.SHA512()),
}
"""OAEP hash names (as in CMS/``KeyTransport``) to the token's hash and MGF1 parameters."""

_SECRET_TEMPLATE: Final[dict[Attribute, Any]] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    # Unmodifiable, so nobody can later turn SIGN on for a tender key (or DECRYPT on a
    # platform key); destroying stays possible. CKA_ALLOWED_MECHANISMS would be tighter
    # but crashes python-pkcs11 0.10.1 (see docs/adr/0004).
    Attribute.MODIFIABLE: False,
}
_BAD_PIN: Final = (PinIncorrect, PinInvalid, PinLenRange, PinLocked, PinExpired)


def tender_key_label(tender_id: str) -> str:
    """The token label of a tender's key pair. Raises ``TokenError`` for an invalid id."""
    try:
        return TENDER_LABEL_PREFIX + parse_tender_id(tender_id)
    except ValueError:
        raise TokenError("not a valid tender id for a token key label") from None


def key_id(label: str) -> bytes:
    """CKA_ID of the key objects labelled ``label``: the label's bytes. Tools such as
    pkcs11-tool select keys by id, and a deterministic id keeps both halves paired."""
    return label.encode("utf-8")


@dataclass(frozen=True)
class KeyAttributes:
    """The security-relevant attributes of one private or secret key, as the token reports."""

    label: str
    object_class: str
    key_type: str
    token: bool
    private: bool
    sensitive: bool
    extractable: bool
    always_sensitive: bool
    never_extractable: bool
    modifiable: bool
    sign: bool
    decrypt: bool
    unwrap: bool
    derive: bool


@dataclass(frozen=True)
class TokenDescription:
    """What the module and token say about themselves."""

    module_path: str
    library_manufacturer: str
    library_description: str
    library_version: tuple[int, int]
    cryptoki_version: tuple[int, int]
    token_label: str
    token_manufacturer: str
    token_model: str
    token_serial: str
    hardware_version: tuple[int, int]
    firmware_version: tuple[int, int]


@dataclass
class _Login:
    """The process-wide login on one token: an anchor session that stays logged in
    while any ``Token`` of this process uses the token."""

    anchor: Any
    pin_digest: bytes
    users: int


_logins_lock = threading.Lock()
_logins: dict[tuple[str, str], _Login] = {}
_module_conf: dict[str, str | None] = {}
"""SOFTHSM2_CONF in force when each module was first loaded in this process."""


def _read_pin(path: Path) -> str:
    try:
        pin = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token PIN file {path}: {exc.strerror}") from None
    if not pin:
        raise ConfigError(f"the token PIN file {path} is empty")
    return pin


def _load_module(module: Path) -> Any:
    key = str(module)
    conf = os.environ.get("SOFTHSM2_CONF")
    with _logins_lock:
        if key in _module_conf and _module_conf[key] != conf:
            raise ConfigError(
                f"{module} was already loaded in this process with SOFTHSM2_CONF="
                f"{_module_conf[key]}; one process serves one token configuration"
            )
        first = key not in _module_conf
        try:
            lib = pkcs11.lib(key)
            if first:
                # python-pkcs11 initialises with NULL arguments ("single-threaded"), and
                # SoftHSM2 then drops its own locks; re-initialise with OS locking before
                # any session exists (docs/adr/0013).
                Cryptoki.of(module).reinitialize_with_os_locking()
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise TokenError(f"cannot load PKCS#11 module {module}: {exc}") from None
        _module_conf.setdefault(key, conf)
        return lib


def _digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode("utf-8")).digest()


def public_key_from(obj: Any) -> rsa.RSAPublicKey:
    """The RSA public key of a key object (from its modulus and public exponent)."""
    modulus = int.from_bytes(obj[Attribute.MODULUS], "big")
    exponent = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def generate_tender_keypair(session: Any, label: str) -> rsa.RSAPublicKey:
    """Generate a tender's RSA-3072 key pair in a logged-in R/W ``session``: the private
    half sensitive, never extractable, unmodifiable, decrypt/unwrap only (no SIGN), both
    token objects labelled ``label``. Returns the public key."""
    public, _private = session.generate_keypair(
        KeyType.RSA,
        RSA_BITS,
        id=key_id(label),
        label=label,
        store=True,
        capabilities=(
            MechanismFlag.ENCRYPT
            | MechanismFlag.DECRYPT
            | MechanismFlag.WRAP
            | MechanismFlag.UNWRAP
        ),
        private_template=dict(_SECRET_TEMPLATE),
        public_template={Attribute.TOKEN: True, Attribute.MODIFIABLE: False},
    )
    return public_key_from(public)


def oaep_decrypt(
    key: Any,
    encrypted_key: bytes,
    params: tuple[Mechanism, MGF, hashes.HashAlgorithm],
    tender_id: str,
) -> bytes:
    """C_Decrypt with RSAES-OAEP (``OAEP_HASHES`` parameters) on a tender's private key
    object; any refusal is ``KeyTransportFailed``."""
    hash_mechanism, mgf, _ = params
    try:
        return bytes(
            key.decrypt(
                encrypted_key,
                mechanism=Mechanism.RSA_PKCS_OAEP,
                mechanism_param=(hash_mechanism, mgf, None),
            )
        )
    except PKCS11Error as exc:
        # SoftHSM reports bad padding as CKR_GENERAL_ERROR; every refusal here means the
        # same to the bid: its content key cannot be recovered.
        raise KeyTransportFailed(
            f"the token could not recover the content key ({type(exc).__name__})",
            tender_id=tender_id,
        ) from None


def read_key_attributes(key: Any, label: str) -> KeyAttributes:
    """The security-relevant attributes of one key object, as the token reports them."""
    return KeyAttributes(
        label=label,
        object_class=_enum_name(key[Attribute.CLASS]),
        key_type=_enum_name(key[Attribute.KEY_TYPE]),
        token=bool(key[Attribute.TOKEN]),
        private=bool(key[Attribute.PRIVATE]),
        sensitive=bool(key[Attribute.SENSITIVE]),
        extractable=bool(key[Attribute.EXTRACTABLE]),
        always_sensitive=bool(key[Attribute.ALWAYS_SENSITIVE]),
        never_extractable=bool(key[Attribute.NEVER_EXTRACTABLE]),
        modifiable=bool(key[Attribute.MODIFIABLE]),
        sign=bool(key[Attribute.SIGN]),
        decrypt=bool(key[Attribute.DECRYPT]),
        unwrap=bool(key[Attribute.UNWRAP]),
        derive=bool(key[Attribute.DERIVE]),
    )


def _enum_name(value: object) -> str:
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


class Token:
    """A logged-in R/W session on one PKCS#11 token. Thread-safe; close it when done."""

    def __init__(self, *, session: Any, lib: Any, module: Path, label: str) -> None:
        """Use ``Token.open``; this wraps an already logged-in session."""
        self._session = session
        self._lib = lib
        self._module = module
        self._label = label
        self._lock = threading.Lock()
        self._closed = False
        self._private_key_uses: dict[str, int] = {}

    # --- Lifecycle ----------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings) -> Token:
        """Open the token named by ``settings`` and log in with the PIN from
        ``settings.pin_path``. Raises ``ConfigError`` or ``TokenError``."""
        module = find_module(settings)
        prepare_environment(settings)
        pin = _read_pin(settings.pin_path)
        lib = _load_module(module)
        label = settings.token_label
        try:
            pkcs_token = lib.get_token(token_label=label)
        except NoSuchToken:
            raise TokenError(
                f"no token labelled {label!r} on {module}; create it first "
                "(hsm_config/setup-softhsm-token for SoftHSM2)"
            ) from None
        except PKCS11Error as exc:
            raise TokenError(f"cannot find token {label!r}: {type(exc).__name__}") from None
        key = (str(module), label)
        refused = TokenError(
            f"cannot log in to token {label!r}: the PIN in {settings.pin_path} was refused"
        )
        with _logins_lock:
            login = _logins.get(key)
            if login is not None:
                # The process is already logged in; a second C_Login would only say so,
                # so the PIN is checked against the one that logged in.
                if not hmac_module.compare_digest(login.pin_digest, _digest(pin)):
                    raise refused
            else:
                try:
                    anchor = pkcs_token.open(rw=True, user_pin=pin)
                except _BAD_PIN:
                    raise refused from None
                except UserAlreadyLoggedIn:
                    raise TokenError(
                        f"token {label!r} is already logged in by other code in this process"
                    ) from None
                except PKCS11Error as exc:
                    raise TokenError(
                        f"cannot log in to token {label!r}: {type(exc).__name__}"
                    ) from None
                login = _Login(anchor=anchor, pin_digest=_digest(pin), users=0)
                _logins[key] = login
            try:
                # Sessions opened without a PIN share the process's login.
                session = pkcs_token.open(rw=True)
            except PKCS11Error as exc:
                if login.users == 0:
                    _logins.pop(key, None)
                    _close_quietly(login.anchor)
                raise TokenError(
                    f"cannot open a session on token {label!r}: {type(exc).__name__}"
                ) from None
            login.users += 1
        return cls(session=session, lib=lib, module=module, label=label)

    def close(self) -> None:
        """Close the session; the last ``Token`` of the process also logs out."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _close_quietly(self._session)
        key = (str(self._module), self._label)
        with _logins_lock:
            login = _logins.get(key)
            if login is None:
                return
            login.users -= 1
            if login.users <= 0:
                del _logins[key]
                _close_quietly(login.anchor)

    def __enter__(self) -> Token:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def label(self) -> str:
        return self._label

    @property
    def module_path(self) -> Path:
        return self._module

    @property
    def private_key_uses(self) -> dict[str, int]:
        """A copy of: tender id -> calls of ``decrypt_tender_key`` through this Token."""
        with self._lock:
            return dict(self._private_key_uses)

    # --- Platform keys ------------------------------------------------------------------
    def ensure_platform_keys(self) -> None:
        """Create the platform keys that are missing. Idempotent within one process;
        run it from one process at a time (two racing creators would make duplicates,
        which later lookups refuse)."""
        with self._locked("create the platform keys"):
            for label in PLATFORM_SIGNING_KEYS:
                if self._find(ObjectClass.PRIVATE_KEY, label) is None:
                    self._destroy_label(label)  # a public half left by an interrupted run
                    self._session.generate_keypair(
                        KeyType.RSA,
                        RSA_BITS,
                        id=key_id(label),
                        label=label,
                        store=True,
                        capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                        private_template=dict(_SECRET_TEMPLATE),
                        public_template={Attribute.TOKEN: True, Attribute.MODIFIABLE: False},
                    )
            for label in PLATFORM_HMAC_KEYS:
                if self._find(ObjectClass.SECRET_KEY, label) is None:
                    self._session.generate_key(
                        KeyType.GENERIC_SECRET,
                        HMAC_KEY_BITS,
                        id=key_id(label),
                        label=label,
                        store=True,
                        mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                        capabilities=MechanismFlag.SIGN,
                        template=dict(_SECRET_TEMPLATE),
                    )

    def public_key(self, label: str) -> rsa.RSAPublicKey:
        """The RSA public key of the key pair ``label``."""
        with self._locked(f"read the public key {label!r}"):
            return self._public_key(label)

    def sign(self, label: str, data: bytes) -> bytes:
        """Sign ``data`` with CKM_SHA256_RSA_PKCS under the platform key ``label``."""
        self._refuse_tender_label(label)
        with self._locked(f"sign with {label!r}"):
            key = self._require(ObjectClass.PRIVATE_KEY, label)
            return bytes(key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

    def hmac(self, label: str, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` under the secret key ``label`` (CKM_SHA256_HMAC)."""
        self._refuse_tender_label(label)
        with self._locked(f"compute an HMAC with {label!r}"):
            key = self._require(ObjectClass.SECRET_KEY, label)
            return bytes(key.sign(data, mechanism=Mechanism.SHA256_HMAC))

    @contextmanager
    def pkcs11_session(self) -> Iterator[Any]:
        """The raw logged-in python-pkcs11 session, held under the token's lock for the
        duration — for pyhanko's PKCS11Signer only (``records.pades``, platform signing
        keys). Never use it for tender keys. PKCS#11 errors inside become ``TokenError``;
        other ``Token`` methods called inside would deadlock (the lock is not reentrant)."""
        with self._locked("use the session for a PDF signature"):
            yield self._session

    def key_attributes(self, label: str) -> KeyAttributes:
        """The attributes of the private (or else secret) key ``label``."""
        with self._locked(f"read the attributes of {label!r}"):
            key = self._find(ObjectClass.PRIVATE_KEY, label)
            if key is None:
                key = self._require(ObjectClass.SECRET_KEY, label)
            return read_key_attributes(key, label)

    # --- Tender keys --------------------------------------------------------------------
    def generate_tender_key(self, tender_id: str) -> rsa.RSAPublicKey:
        """Generate the tender's RSA-3072 key pair (decrypt/unwrap only) on the token.
        Refuses with ``TokenError`` if the tender has a key already."""
        label = tender_key_label(tender_id)
        with self._locked(f"generate the key of tender {tender_id!r}"):
            if self._session_has(label):
                raise TokenError(f"tender {tender_id!r} already has a key on the token")
            return generate_tender_keypair(self._session, label)

    def tender_key_exists(self, tender_id: str) -> bool:
        label = tender_key_label(tender_id)
        with self._locked(f"look up the key of tender {tender_id!r}"):
            return self._find(ObjectClass.PRIVATE_KEY, label) is not None

    def tender_public_key(self, tender_id: str) -> rsa.RSAPublicKey:
        label = tender_key_label(tender_id)
        with self._locked(f"read the public key of tender {tender_id!r}"):
            return self._public_key(label)

    def decrypt_tender_key(self, tender_id: str, encrypted_key: bytes, oaep_hash: str) -> bytes:
        """RSAES-OAEP-decrypt a CMS encryptedKey with the tender's private key (C_Decrypt,
        MGF1 with the same hash). The only use of a tender private key in the product.

        Raises ``KeyTransportFailed`` if the token refuses (bad padding, wrong key,
        unsupported hash), ``TokenError`` if the tender has no key.
        """
        label = tender_key_label(tender_id)
        with self._lock:
            self._ensure_open()
            # Counted before anything else, so a refused call still shows up.
            self._private_key_uses[tender_id] = self._private_key_uses.get(tender_id, 0) + 1
            params = OAEP_HASHES.get(oaep_hash)
            if params is None:
                raise KeyTransportFailed(f"OAEP hash {oaep_hash!r} is not supported")
            try:
                key = self._find(ObjectClass.PRIVATE_KEY, label)
            except PKCS11Error as exc:
                raise TokenError(f"cannot look up tender key: {type(exc).__name__}") from None
            if key is None:
                raise TokenError(f"tender {tender_id!r} has no key on the token")
            return oaep_decrypt(key, encrypted_key, params, tender_id)

    def destroy_tender_key(self, tender_id: str) -> None:
        """Destroy the tender's key pair. Raises ``TokenError`` if there is none."""
        label = tender_key_label(tender_id)
        with self._locked(f"destroy the key of tender {tender_id!r}"):
            if not self._destroy_label(label):
                raise TokenError(f"tender {tender_id!r} has no key on the token")

    # --- Probing (used by profile.py) ---------------------------------------------------
    def describe(self) -> TokenDescription:
        with self._locked("describe the token"):
            token = self._session.token
            return TokenDescription(
                module_path=str(self._module),
                library_manufacturer=str(self._lib.manufacturer_id).strip(),
                library_description=str(self._lib.library_description).strip(),
                library_version=tuple(self._lib.library_version),
                cryptoki_version=tuple(self._lib.cryptoki_version),
                token_label=self._label,
                token_manufacturer=str(token.manufacturer_id).strip(),
                token_model=str(token.model).strip(),
                token_serial=bytes(token.serial).decode("ascii", errors="replace").strip(),
                hardware_version=tuple(token.hardware_version),
                firmware_version=tuple(token.firmware_version),
            )

    def mechanisms(self) -> dict[str, tuple[int, int]]:
        """Mechanism name -> (min, max) key size, for every mechanism the slot lists."""
        with self._locked("list the mechanisms"):
            slot = self._session.token.slot
            result: dict[str, tuple[int, int]] = {}
            for mechanism in slot.get_mechanisms():
                info = slot.get_mechanism_info(mechanism)
                result[_enum_name(mechanism)] = (info.min_key_length, info.max_key_length)
            return result

    def oaep_round_trips(self, oaep_hashes: Iterable[str]) -> tuple[str, ...]:
        """Those of ``oaep_hashes`` with which the token really decrypts RSA-OAEP: a
        software encryption of a random key under a throw-away session key pair (never
        stored on the token) must come back."""
        names = [name for name in oaep_hashes if name in OAEP_HASHES]
        with self._locked("probe RSA-OAEP"):
            public, private = self._session.generate_keypair(
                KeyType.RSA,
                2048,
                store=False,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
            try:
                software_key = public_key_from(public)
                return tuple(
                    name for name in names if self._oaep_trial(software_key, private, name)
                )
            finally:
                private.destroy()
                public.destroy()

    @staticmethod
    def _oaep_trial(software_key: rsa.RSAPublicKey, private: Any, name: str) -> bool:
        hash_mechanism, mgf, algorithm = OAEP_HASHES[name]
        secret = secrets.token_bytes(32)
        ciphertext = software_key.encrypt(
            secret, padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)
        )
        try:
            plain = private.decrypt(
                ciphertext,
                mechanism=Mechanism.RSA_PKCS_OAEP,
                mechanism_param=(hash_mechanism, mgf, None),
            )
        except PKCS11Error:
            return False
        return hmac_module.compare_digest(bytes(plain), secret)

    # --- Internals (call with self._lock held) ------------------------------------------
    @contextmanager
    def _locked(self, action: str) -> Iterator[None]:
        with self._lock:
            self._ensure_open()
            try:
                yield
            except PKCS11Error as exc:
                raise TokenError(
                    f"token {self._label!r}: cannot {action} ({type(exc).__name__})"
                ) from None

    def _ensure_open(self) -> None:
        if self._closed:
            raise TokenError(f"token {self._label!r} is closed")

    def _find(self, object_class: ObjectClass, label: str) -> Any | None:
        found = list(
            self._session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label})
        )
        if len(found) > 1:
            raise TokenError(
                f"token holds {len(found)} {_enum_name(object_class)} objects labelled "
                f"{label!r}; remove the duplicates"
            )
        return found[0] if found else None

    def _require(self, object_class: ObjectClass, label: str) -> Any:
        found = self._find(object_class, label)
        if found is None:
            raise TokenError(f"token has no {_enum_name(object_class)} labelled {label!r}")
        return found

    def _session_has(self, label: str) -> bool:
        return any(True for _ in self._session.get_objects({Attribute.LABEL: label}))

    def _destroy_label(self, label: str) -> bool:
        objects = list(self._session.get_objects({Attribute.LABEL: label}))
        for obj in objects:
            obj.destroy()
        return bool(objects)

    def _public_key(self, label: str) -> rsa.RSAPublicKey:
        # Some HSMs keep no public-key object; CKA_MODULUS is public on the private key.
        public = self._find(ObjectClass.PUBLIC_KEY, label)
        if public is None:
            public = self._require(ObjectClass.PRIVATE_KEY, label)
        return public_key_from(public)

    @staticmethod
    def _refuse_tender_label(label: str) -> None:
        if label.startswith(TENDER_LABEL_PREFIX):
            raise TokenError("tender keys are used only through decrypt_tender_key")


def _close_quietly(session: Any) -> None:
    # Closing is best effort: a session the token already dropped is closed anyway.
    with contextlib.suppress(PKCS11Error):
        session.close()
