"""CA bridge errors: stable codes, one gRPC status each, context kept as attributes."""

from __future__ import annotations

import grpc
import pytest

from ca_bridge import errors

EXPECTED = {
    errors.SignerUntrusted: ("SIGNER_UNTRUSTED", "PERMISSION_DENIED"),
    errors.SignerExpired: ("SIGNER_EXPIRED", "PERMISSION_DENIED"),
    errors.SignerNotYetValid: ("SIGNER_NOT_YET_VALID", "PERMISSION_DENIED"),
    errors.SignerRevoked: ("SIGNER_REVOKED", "PERMISSION_DENIED"),
    errors.SignerKeyUsage: ("SIGNER_KEY_USAGE", "PERMISSION_DENIED"),
    errors.SignerPolicy: ("SIGNER_POLICY", "PERMISSION_DENIED"),
    errors.RevocationUnavailable: ("REVOCATION_UNAVAILABLE", "UNAVAILABLE"),
    errors.CertificateMalformed: ("CERTIFICATE_MALFORMED", "INVALID_ARGUMENT"),
}


@pytest.mark.parametrize(
    ("cls", "expected"), list(EXPECTED.items()), ids=lambda v: getattr(v, "__name__", "")
)
def test_error_has_its_exact_code_and_status(
    cls: type[errors.CaBridgeError], expected: tuple[str, str]
) -> None:
    assert (cls.code, cls.grpc_status) == expected


def test_every_status_names_a_grpc_status_code() -> None:
    for cls in errors.all_error_classes():
        assert cls.grpc_status in grpc.StatusCode.__members__


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in errors.all_error_classes()]
    assert len(codes) == len(set(codes))


def test_message_and_context_are_attributes() -> None:
    error = errors.SignerRevoked("renew it", reason="key_compromise")

    assert error.message == "renew it"
    assert error.context == {"reason": "key_compromise"}
    assert str(error) == "SIGNER_REVOKED: renew it"
