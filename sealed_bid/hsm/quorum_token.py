"""Per-tender quorum tokens: a token of its own for one tender's key, under a PIN that
only the opening officers' shares rebuild.

Owns the life of such a token in a running process: ``QuorumTokens.create`` initialises
a fresh token in the module's free slot (C_InitToken through ``cryptoki``, as
python-pkcs11 has none), with a random SO PIN that is generated here and dropped, sets the
caller's user PIN and generates the tender's RSA-3072 key pair there; ``QuorumTokens.open``
logs in with a rebuilt PIN and hands out a ``QuorumKeySession``, the only place a quorum
tender's private key is used. See docs/adr/0013.

It must never store, log, return or put in a message a PIN or the SO PIN, never export
key material, and never decide *when* a key may be used: the service checks the opening
time before it calls ``open``. Every PKCS#11 call here is serialised behind one
process-wide lock (SoftHSM2 initialised by python-pkcs11 has no locking of its own), and
the platform token's login is never touched: PKCS#11 login state is per token.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, ObjectClass, TokenFlag
from pkcs11.constants import UserType
from pkcs11.exceptions import (
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)

from sealed_bid.config import Settings
from sealed_bid.errors import KeyTransportFailed, ShareInvalid, TokenError
from sealed_bid.hsm.cryptoki import Cryptoki
from sealed_bid.hsm.module import find_module
from sealed_bid.hsm.softhsm import prepare_environment
from sealed_bid.hsm.token import (
    OAEP_HASHES,
    KeyAttributes,
    _load_module,  # the process-wide "one SoftHSM configuration" guard
    generate_tender_keypair,
    oaep_decrypt,
    public_key_from,
    read_key_attributes,
    tender_key_label,
)

QUORUM_LABEL_PREFIX: Final = "q-"
_LABEL_DIGEST_HEX: Final = 24
"""96 bits of SHA-256: the label is "q-" + 24 hex digits, within PKCS#11's 32 bytes."""
VOID_LABEL: Final = "sealed-bid:void"
"""The label a token gets when its creation failed half-way (wiped, never used again)."""
MIN_PIN_CHARS: Final = 16
"""SoftHSM derives the key that protects the token's objects from the PIN with only
~1500 SHA-256 iterations, so the PIN itself must carry the entropy (the service uses 64
hex digits). The maximum is the token's own (SoftHSM: 255 bytes)."""
_SO_PIN_BYTES: Final = 32

_REFUSED_PIN: Final = (PinIncorrect, PinInvalid, PinLenRange, UnicodeEncodeError)
"""A rebuilt PIN the token refuses (or that is not even text): the shares were wrong."""
_SHARES_REFUSED: Final = "the presented shares do not unlock the tender's token"

_lock = threading.RLock()
"""Serialises every PKCS#11 call of this module, and guards ``_open_tokens``."""
_open_tokens: set[tuple[str, str]] = set()
"""(module, token label) of the quorum tokens this process is logged in to."""


def quorum_token_label(tender_id: str) -> str:
    """The label of the tender's own token: "q-" and 24 hex digits of a SHA-256 of the
    tender id (ids are up to 64 characters, labels at most 32). Raises ``TokenError``
    for an invalid tender id."""
    tender_key_label(tender_id)  # validates the id
    digest = hashlib.sha256(b"sealed-bid quorum token\x00" + tender_id.encode("ascii"))
    return QUORUM_LABEL_PREFIX + digest.hexdigest()[:_LABEL_DIGEST_HEX]


@dataclass(frozen=True)
class QuorumKey:
    """What tender creation keeps of a quorum token: no PIN, nothing secret."""

    token_label: str
    token_serial: str
    public_key: rsa.RSAPublicKey


class QuorumTokens:
    """Creates and opens per-tender quorum tokens on the configured PKCS#11 module."""

    def __init__(self, settings: Settings) -> None:
        """Load the module as ``Token.open`` does (same module and SoftHSM configuration
        discovery). Raises ``ConfigError`` or ``TokenError``."""
        self._module = find_module(settings)
        prepare_environment(settings)
        self._lib = _load_module(self._module)
        try:
            self._cryptoki = Cryptoki.of(self._module)
        except (OSError, AttributeError, PKCS11Error) as exc:
            raise TokenError(
                f"cannot bind the extra PKCS#11 calls of {self._module}: {type(exc).__name__}"
            ) from None

    @property
    def module_path(self) -> Path:
        return self._module

    def exists(self, tender_id: str) -> bool:
        """Whether a token for the tender is present in this process's view of the module."""
        label = quorum_token_label(tender_id)
        with _lock:
            return bool(self._tokens_labelled(label))

    def create(self, tender_id: str, pin: str) -> QuorumKey:
        """Initialise a fresh token for the tender in the module's free slot with a random
        SO PIN (generated here and dropped), set the user PIN to ``pin`` and generate the
        tender's RSA-3072 key pair on it (private half: decrypt/unwrap only, sensitive,
        never extractable, unmodifiable). Returns the token's label and serial and the
        public key. Raises ``TokenError`` if the tender has a token already, the PIN is
        shorter than ``MIN_PIN_CHARS``, or the module has no free slot."""
        label = quorum_token_label(tender_id)
        key_label = tender_key_label(tender_id)
        if len(pin) < MIN_PIN_CHARS:
            raise TokenError(f"a quorum token PIN must have at least {MIN_PIN_CHARS} characters")
        with _lock:
            if self._tokens_labelled(label):
                raise TokenError(f"tender {tender_id!r} already has a quorum token ({label})")
            slot = self._free_slot()
            so_pin = secrets.token_urlsafe(_SO_PIN_BYTES)
            try:
                self._cryptoki.init_token(slot.slot_id, so_pin, label)
            except PKCS11Error as exc:
                raise TokenError(
                    f"cannot initialise a token for tender {tender_id!r} ({type(exc).__name__})"
                ) from None
            try:
                pkcs_token = slot.get_token()
                public_key = self._provision(pkcs_token, so_pin, pin, key_label)
            except BaseException as failure:
                self._void(slot.slot_id, so_pin, tender_id, failure)
                raise
            finally:
                del so_pin
            return QuorumKey(
                token_label=label,
                token_serial=_serial(pkcs_token),
                public_key=public_key,
            )

    def open(
        self, tender_id: str, pin: str, *, token_serial: str | None = None
    ) -> QuorumKeySession:
        """Log in to the tender's token with ``pin`` (rebuilt from the shares) and return
        the key session; close it (or use ``with``) to log out. ``token_serial``, when
        given, must match the token found by label.

        Raises ``ShareInvalid`` if the token refuses the PIN, ``TokenError`` if the
        tender has no token, its PIN is locked, or this process has it open already.
        """
        label = quorum_token_label(tender_id)
        key = (str(self._module), label)
        with _lock:
            if key in _open_tokens:
                raise TokenError(
                    f"the quorum token of tender {tender_id!r} is already open in this process"
                )
            found = self._tokens_labelled(label)
            if not found:
                raise TokenError(f"tender {tender_id!r} has no quorum token ({label})")
            if len(found) > 1:
                raise TokenError(f"{len(found)} tokens are labelled {label!r}; remove the copies")
            pkcs_token = found[0]
            if token_serial is not None and _serial(pkcs_token) != token_serial:
                raise TokenError(
                    f"token {label!r} has serial {_serial(pkcs_token)!r}, not {token_serial!r}"
                )
            try:
                session = pkcs_token.open(rw=True)
            except PKCS11Error as exc:
                raise TokenError(
                    f"cannot open a session on token {label!r}: {type(exc).__name__}"
                ) from None
            try:
                self._cryptoki.login(session.handle, UserType.USER, pin)
            except _REFUSED_PIN:
                _close_quietly(session)
                raise ShareInvalid(_SHARES_REFUSED, tender_id=tender_id) from None
            except (PinLocked, PinExpired) as exc:
                _close_quietly(session)
                raise TokenError(
                    f"token {label!r} no longer accepts its PIN ({type(exc).__name__})"
                ) from None
            except UserAlreadyLoggedIn:
                _close_quietly(session)
                raise TokenError(
                    f"token {label!r} is already logged in by other code in this process"
                ) from None
            except PKCS11Error as exc:
                _close_quietly(session)
                raise TokenError(
                    f"cannot log in to token {label!r}: {type(exc).__name__}"
                ) from None
            _open_tokens.add(key)
            return QuorumKeySession(
                session=session,
                cryptoki=self._cryptoki,
                registry_key=key,
                tender_id=tender_id,
                token_label=label,
            )

    # --- Internals (call with _lock held) ---------------------------------------------
    def _tokens_labelled(self, label: str) -> list[Any]:
        try:
            return list(self._lib.get_tokens(token_label=label))
        except PKCS11Error as exc:
            raise TokenError(f"cannot list the tokens: {type(exc).__name__}") from None

    def _free_slot(self) -> Any:
        # Listing the slots makes SoftHSM2 add an empty slot if it has none left, so there
        # is one after every C_InitToken (docs/adr/0013).
        try:
            for slot in self._lib.get_slots(token_present=True):
                if not slot.get_token().flags & TokenFlag.TOKEN_INITIALIZED:
                    return slot
        except PKCS11Error as exc:
            raise TokenError(f"cannot list the slots: {type(exc).__name__}") from None
        raise TokenError(
            f"{self._module} offers no uninitialised token slot; on a hardware HSM create "
            "one partition or token per tender (hsm_config/README.md, quorum tokens)"
        )

    def _provision(self, pkcs_token: Any, so_pin: str, pin: str, key_label: str) -> Any:
        try:
            session = pkcs_token.open(rw=True)
        except PKCS11Error as exc:
            raise TokenError(
                f"cannot open a session on the new token: {type(exc).__name__}"
            ) from None
        logged_in = False
        try:
            self._cryptoki.login(session.handle, UserType.SO, so_pin)
            logged_in = True
            session.init_pin(pin)
            self._cryptoki.logout(session.handle)
            logged_in = False
            self._cryptoki.login(session.handle, UserType.USER, pin)
            logged_in = True
            return generate_tender_keypair(session, key_label)
        except PKCS11Error as exc:
            raise TokenError(
                f"cannot set up the new token's PIN and key ({type(exc).__name__})"
            ) from None
        finally:
            if logged_in:
                with contextlib.suppress(PKCS11Error):
                    self._cryptoki.logout(session.handle)
            _close_quietly(session)

    def _void(self, slot_id: int, so_pin: str, tender_id: str, failure: BaseException) -> None:
        """Wipe a half-made token (C_InitToken again, which the SO PIN still in hand
        allows) and relabel it, so the tender can be created again."""
        try:
            self._cryptoki.init_token(slot_id, so_pin, VOID_LABEL)
        except PKCS11Error as exc:
            failure.add_note(
                f"the half-made token of tender {tender_id!r} could not be wiped "
                f"({type(exc).__name__}); delete it with softhsm2-util --delete-token"
            )


class QuorumKeySession:
    """A logged-in session on one tender's quorum token. Thread-safe (every call is
    serialised process-wide); close it, or use ``with``, to log out."""

    def __init__(
        self,
        *,
        session: Any,
        cryptoki: Cryptoki,
        registry_key: tuple[str, str],
        tender_id: str,
        token_label: str,
    ) -> None:
        """Use ``QuorumTokens.open``; this wraps a session whose token is logged in."""
        self._session = session
        self._cryptoki = cryptoki
        self._registry_key = registry_key
        self._tender_id = tender_id
        self._token_label = token_label
        self._key_label = tender_key_label(tender_id)
        self._closed = False
        self._uses = 0

    def __enter__(self) -> QuorumKeySession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Log out of the tender's token and close the session. Idempotent."""
        with _lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(PKCS11Error):
                self._cryptoki.logout(self._session.handle)
            _close_quietly(self._session)
            _open_tokens.discard(self._registry_key)

    @property
    def tender_id(self) -> str:
        return self._tender_id

    @property
    def token_label(self) -> str:
        return self._token_label

    @property
    def uses(self) -> int:
        """Calls of ``decrypt_key`` through this session, refused ones included."""
        with _lock:
            return self._uses

    def decrypt_key(self, encrypted_key: bytes, oaep_hash: str) -> bytes:
        """RSAES-OAEP-decrypt a CMS encryptedKey with the tender's private key (MGF1 with
        the same hash): the same contract as ``Token.decrypt_tender_key``.

        Raises ``KeyTransportFailed`` if the token refuses (bad padding, unsupported
        hash), ``TokenError`` if the session is closed or the key was destroyed.
        """
        with _lock:
            self._ensure_open()
            # Counted before anything else, so a refused call still shows up.
            self._uses += 1
            params = OAEP_HASHES.get(oaep_hash)
            if params is None:
                raise KeyTransportFailed(f"OAEP hash {oaep_hash!r} is not supported")
            key = self._find(ObjectClass.PRIVATE_KEY)
            if key is None:
                raise TokenError(f"tender {self._tender_id!r} has no key on its quorum token")
            return oaep_decrypt(key, encrypted_key, params, self._tender_id)

    def public_key(self) -> rsa.RSAPublicKey:
        """The tender's public key, read from its token."""
        with _lock:
            self._ensure_open()
            found = self._find(ObjectClass.PUBLIC_KEY) or self._find(ObjectClass.PRIVATE_KEY)
            if found is None:
                raise TokenError(f"tender {self._tender_id!r} has no key on its quorum token")
            return public_key_from(found)

    def key_attributes(self) -> KeyAttributes:
        """The security-relevant attributes of the tender's private key, as the token
        reports them (the same read as ``Token.key_attributes``)."""
        with _lock:
            self._ensure_open()
            key = self._find(ObjectClass.PRIVATE_KEY)
            if key is None:
                raise TokenError(f"tender {self._tender_id!r} has no key on its quorum token")
            try:
                return read_key_attributes(key, self._key_label)
            except PKCS11Error as exc:
                raise TokenError(
                    f"cannot read the key's attributes: {type(exc).__name__}"
                ) from None

    def destroy_key(self) -> None:
        """Destroy the tender's private and public key objects (C_DestroyObject).
        Idempotent: destroying what is gone already does nothing."""
        with _lock:
            self._ensure_open()
            try:
                for obj in list(self._session.get_objects({Attribute.LABEL: self._key_label})):
                    obj.destroy()
            except PKCS11Error as exc:
                raise TokenError(
                    f"cannot destroy the key of tender {self._tender_id!r} ({type(exc).__name__})"
                ) from None

    def key_destroyed(self) -> bool:
        """Whether the tender's private key is gone from its token."""
        with _lock:
            self._ensure_open()
            return self._find(ObjectClass.PRIVATE_KEY) is None

    # --- Internals (call with _lock held) ---------------------------------------------
    def _ensure_open(self) -> None:
        if self._closed:
            raise TokenError(f"the quorum key session of tender {self._tender_id!r} is closed")

    def _find(self, object_class: ObjectClass) -> Any | None:
        try:
            found = list(
                self._session.get_objects(
                    {Attribute.CLASS: object_class, Attribute.LABEL: self._key_label}
                )
            )
        except PKCS11Error as exc:
            raise TokenError(f"cannot look up the tender key: {type(exc).__name__}") from None
        if len(found) > 1:
            raise TokenError(
                f"the quorum token holds {len(found)} objects labelled {self._key_label!r}"
            )
        return found[0] if found else None


def _serial(pkcs_token: Any) -> str:
    return bytes(pkcs_token.serial).decode("ascii", errors="replace").strip()


def _close_quietly(session: Any) -> None:
    # Sessions are opened without python-pkcs11's login, so close() only closes.
    with contextlib.suppress(PKCS11Error):
        session.close()
