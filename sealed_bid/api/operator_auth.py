"""Who may call operator RPCs: a TLS client certificate, verified by the operator
listener against the platform root, whose subject carries OU=operator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from sealed_bid.errors import OfficerNotNamed, OperatorRequired

OPERATOR_ROLE = "operator"


def operator_subject(context: grpc.ServicerContext) -> str:
    """Return the operator's subject (RFC 4514) or raise OperatorRequired."""
    # grpc-stubs types the values as bytes; grpcio really returns a list of bytes.
    auth = cast("Mapping[str, Sequence[bytes]]", context.auth_context())
    pems = list(auth.get("x509_pem_cert", ()))
    if not pems:
        raise OperatorRequired("this RPC needs an operator client certificate (mutual TLS)")
    cert = x509.load_pem_x509_certificate(pems[0])
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if OPERATOR_ROLE not in units:
        raise OperatorRequired(
            "the client certificate does not carry the operator role (OU=operator)"
        )
    return cert.subject.rfc4514_string()


def client_certificate_der(context: grpc.ServicerContext) -> bytes:
    """The caller's TLS client certificate (DER), verified by the listener against the
    operator CA; raises OfficerNotNamed when the call carries none."""
    auth = cast("Mapping[str, Sequence[bytes]]", context.auth_context())
    pems = list(auth.get("x509_pem_cert", ()))
    if not pems:
        raise OfficerNotNamed("this RPC needs the officer's client certificate (mutual TLS)")
    return x509.load_pem_x509_certificate(pems[0]).public_bytes(serialization.Encoding.DER)
