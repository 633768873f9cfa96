"""Trusted time (RFC 3161, ADR 0014): requests, offline token verification, an HTTP
client, CAdES signature time-stamps, and a development TSA (``dev_tsa``, not re-exported:
it is for development and tests only). No database, no token, no local clock as evidence.
"""

from sealed_bid.timestamping.cades import (
    add_unsigned_timestamp,
    signature_digest,
    signature_timestamp_attribute,
    signature_timestamp_of,
)
from sealed_bid.timestamping.client import TimestampClient
from sealed_bid.timestamping.rfc3161 import (
    TimestampToken,
    make_request,
    verify_response,
    verify_token,
)

__all__ = [
    "TimestampClient",
    "TimestampToken",
    "add_unsigned_timestamp",
    "make_request",
    "signature_digest",
    "signature_timestamp_attribute",
    "signature_timestamp_of",
    "verify_response",
    "verify_token",
]
