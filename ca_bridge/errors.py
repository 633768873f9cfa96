"""The errors of the CA bridge, each with a stable machine code and one gRPC status.

``ca_bridge`` never imports ``sealed_bid``: the service maps these by their ``code`` and
``grpc_status`` attributes (``grpc_status`` is a ``grpc.StatusCode`` member name). Codes
are what clients branch on and are never renamed. "Is invalid" (revoked, expired: final)
is kept apart from "could not tell" (``RevocationUnavailable``: retry later).
"""

from __future__ import annotations

from typing import ClassVar


class CaBridgeError(Exception):
    """Base of every error the CA bridge raises on purpose."""

    code: ClassVar[str] = "CA_BRIDGE_ERROR"
    grpc_status: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class SignerUntrusted(CaBridgeError):
    """No valid path from the signer to an anchor of an accepted CA."""

    code = "SIGNER_UNTRUSTED"
    grpc_status = "PERMISSION_DENIED"


class SignerExpired(CaBridgeError):
    code = "SIGNER_EXPIRED"
    grpc_status = "PERMISSION_DENIED"


class SignerNotYetValid(CaBridgeError):
    code = "SIGNER_NOT_YET_VALID"
    grpc_status = "PERMISSION_DENIED"


class SignerRevoked(CaBridgeError):
    code = "SIGNER_REVOKED"
    grpc_status = "PERMISSION_DENIED"


class SignerKeyUsage(CaBridgeError):
    """The certificate is not issued for signing (keyUsage / extendedKeyUsage)."""

    code = "SIGNER_KEY_USAGE"
    grpc_status = "PERMISSION_DENIED"


class SignerPolicy(CaBridgeError):
    """The validation policy refuses the request (no accepted CA, weak algorithm, ...)."""

    code = "SIGNER_POLICY"
    grpc_status = "PERMISSION_DENIED"


class RevocationUnavailable(CaBridgeError):
    """Revocation status could not be established (CRL missing or stale): retry later."""

    code = "REVOCATION_UNAVAILABLE"
    grpc_status = "UNAVAILABLE"


class CertificateMalformed(CaBridgeError):
    """A certificate or CRL does not parse as DER X.509."""

    code = "CERTIFICATE_MALFORMED"
    grpc_status = "INVALID_ARGUMENT"


class TrustStoreError(CaBridgeError):
    """The trust material on disk is missing or unreadable (an operator must fix it)."""

    code = "TRUST_STORE_ERROR"
    grpc_status = "FAILED_PRECONDITION"


def all_error_classes() -> list[type[CaBridgeError]]:
    """Every error class, for the service's code table and its uniqueness test."""
    seen: list[type[CaBridgeError]] = []
    stack: list[type[CaBridgeError]] = [CaBridgeError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
