"""Stable codes are unique across both packages and each maps to one gRPC status."""

from __future__ import annotations

import grpc

from ca_bridge import errors as ca_errors
from sealed_bid import errors
from sealed_bid.api.status import status_name


def test_every_code_is_unique_and_has_a_real_grpc_status() -> None:
    classes = [*errors.all_error_classes(), *ca_errors.all_error_classes()]
    codes = [c.code for c in classes if c not in (errors.SealedBidError, ca_errors.CaBridgeError)]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        name = cls.status.value if issubclass(cls, errors.SealedBidError) else cls.grpc_status
        assert name in grpc.StatusCode.__members__, (cls, name)


def test_the_status_table_reads_both_hierarchies() -> None:
    assert status_name(errors.BidLate("late")) == "FAILED_PRECONDITION"
    assert status_name(ca_errors.SignerRevoked("revoked")) == "PERMISSION_DENIED"
