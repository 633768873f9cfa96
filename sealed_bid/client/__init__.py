"""The Python client library for bidders and operators."""

from sealed_bid.client.client import SealedBidClient, ServiceError

__all__ = ["SealedBidClient", "ServiceError"]
