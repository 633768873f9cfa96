"""A minimal ctypes binding to the PKCS#11 calls python-pkcs11 0.10.1 lacks or gets wrong.

Owns exactly four things: ``C_InitToken`` (python-pkcs11 has none), ``C_Login`` and
``C_Logout`` on a session python-pkcs11 opened (its own ``Token.open(user_pin=...)``
leaks the session when the PIN is refused), and re-initialising a freshly loaded module
with ``CKF_OS_LOCKING_OK`` (python-pkcs11 calls ``C_Initialize(NULL)``, which tells
SoftHSM2 that the application never calls it from two threads at once).

It works on the module python-pkcs11 has already loaded and initialised in this process:
``dlopen`` of the same path returns the same handle, so both bindings share one module
state (sessions, logins, slots). It never loads a module python-pkcs11 has not loaded,
never calls ``C_Finalize`` except in ``reinitialize_with_os_locking``, and never keeps,
logs, formats or returns a PIN. Linux/macOS only (the structures are not packed).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any, Final

from pkcs11.constants import UserType
from pkcs11.exceptions import (
    ArgumentsBad,
    FunctionNotSupported,
    GeneralError,
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    SessionExists,
    SessionHandleInvalid,
    SessionReadOnlyExists,
    SessionReadWriteSOExists,
    SlotIDInvalid,
    TokenNotPresent,
    TokenNotRecognised,
    TokenWriteProtected,
    UserAlreadyLoggedIn,
    UserNotLoggedIn,
    UserPinNotInitialized,
    UserTooManyTypes,
)

_CK_ULONG = ctypes.c_ulong
_CKF_OS_LOCKING_OK: Final = 0x00000002
_CKR_OK: Final = 0
_LABEL_BYTES: Final = 32

_ERRORS: Final[dict[int, type[PKCS11Error]]] = {
    0x003: SlotIDInvalid,
    0x005: GeneralError,
    0x007: ArgumentsBad,
    0x054: FunctionNotSupported,
    0x0A0: PinIncorrect,
    0x0A1: PinInvalid,
    0x0A2: PinLenRange,
    0x0A3: PinExpired,
    0x0A4: PinLocked,
    0x0B3: SessionHandleInvalid,
    0x0B6: SessionExists,
    0x0B7: SessionReadOnlyExists,
    0x0B8: SessionReadWriteSOExists,
    0x0E0: TokenNotPresent,
    0x0E1: TokenNotRecognised,
    0x0E2: TokenWriteProtected,
    0x100: UserAlreadyLoggedIn,
    0x101: UserNotLoggedIn,
    0x102: UserPinNotInitialized,
    0x105: UserTooManyTypes,
}
"""CK_RV values to python-pkcs11's exception classes, so callers catch one family."""

# CK_FUNCTION_LIST up to C_Logout: the only entries this binding calls.
_ENTRIES: Final = (
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
)


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _FunctionList(ctypes.Structure):
    _fields_ = (("version", _Version), *((name, ctypes.c_void_p) for name in _ENTRIES))


class _InitializeArgs(ctypes.Structure):
    _fields_ = (
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", _CK_ULONG),
        ("pReserved", ctypes.c_void_p),
    )


# CFUNCTYPE (not PYFUNCTYPE): the GIL is released during the call, as python-pkcs11 does.
_InitTokenType = ctypes.CFUNCTYPE(_CK_ULONG, _CK_ULONG, ctypes.c_char_p, _CK_ULONG, ctypes.c_char_p)
_LoginType = ctypes.CFUNCTYPE(_CK_ULONG, _CK_ULONG, _CK_ULONG, ctypes.c_char_p, _CK_ULONG)
_LogoutType = ctypes.CFUNCTYPE(_CK_ULONG, _CK_ULONG)
_InitializeType = ctypes.CFUNCTYPE(_CK_ULONG, ctypes.c_void_p)


def _check(function: str, rv: int) -> None:
    if rv != _CKR_OK:
        # The message names the function and the code, never an argument.
        raise _ERRORS.get(rv, PKCS11Error)(f"{function} returned CKR 0x{rv:x}")


class Cryptoki:
    """The extra entry points of one already loaded PKCS#11 module. Get it with
    ``Cryptoki.of(module)``; its calls are as thread-safe as the module itself."""

    def __init__(self, functions: Any, module: Path) -> None:
        """Use ``Cryptoki.of``; ``functions`` is the module's CK_FUNCTION_LIST."""
        self._module = module
        self._init_token = _InitTokenType(functions.C_InitToken)
        self._login = _LoginType(functions.C_Login)
        self._logout = _LogoutType(functions.C_Logout)
        self._initialize = _InitializeType(functions.C_Initialize)
        self._finalize = _InitializeType(functions.C_Finalize)

    @classmethod
    def of(cls, module: Path) -> Cryptoki:
        """The binding for ``module``, which python-pkcs11 must have loaded already
        (``pkcs11.lib(str(module))``): this binding never initialises a module itself."""
        key = str(module)
        with _bindings_lock:
            binding = _bindings.get(key)
            if binding is None:
                library = ctypes.CDLL(key)
                get_function_list = library.C_GetFunctionList
                get_function_list.restype = _CK_ULONG
                get_function_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
                functions = ctypes.POINTER(_FunctionList)()
                _check("C_GetFunctionList", get_function_list(ctypes.byref(functions)))
                binding = cls(functions.contents, module)
                _bindings[key] = binding
            return binding

    @property
    def module(self) -> Path:
        return self._module

    def init_token(self, slot_id: int, so_pin: str, label: str) -> None:
        """C_InitToken: initialise the token in ``slot_id`` with ``so_pin`` and ``label``
        (at most 32 bytes of UTF-8, blank-padded as PKCS#11 wants)."""
        encoded = label.encode("utf-8")
        if not encoded or len(encoded) > _LABEL_BYTES:
            raise ArgumentsBad(f"a token label is 1..{_LABEL_BYTES} bytes of UTF-8")
        pin = so_pin.encode("utf-8")
        _check(
            "C_InitToken",
            self._init_token(slot_id, pin, len(pin), encoded.ljust(_LABEL_BYTES, b" ")),
        )

    def login(self, session_handle: int, user_type: UserType, pin: str) -> None:
        """C_Login on a session python-pkcs11 opened without a PIN (``Session.handle``).
        The session stays open whatever the answer; the caller closes it."""
        encoded = pin.encode("utf-8")
        _check("C_Login", self._login(session_handle, int(user_type), encoded, len(encoded)))

    def logout(self, session_handle: int) -> None:
        """C_Logout: ends the login of the session's token (every session on it)."""
        _check("C_Logout", self._logout(session_handle))

    def reinitialize_with_os_locking(self) -> None:
        """C_Finalize, then C_Initialize with CKF_OS_LOCKING_OK.

        python-pkcs11 initialises with NULL arguments, which PKCS#11 defines as "the
        application will not call the library from several threads at once"; SoftHSM2
        then disables its own mutexes, and two threads using two sessions crash the
        process (measured: docs/adr/0013). Call this once, right after the first
        ``pkcs11.lib(module)`` of the process and before any session is opened: it
        discards every session and login of the module.
        """
        _check("C_Finalize", self._finalize(None))
        args = _InitializeArgs(flags=_CKF_OS_LOCKING_OK)
        _check("C_Initialize", self._initialize(ctypes.byref(args)))


_bindings_lock = threading.Lock()
_bindings: dict[str, Cryptoki] = {}
