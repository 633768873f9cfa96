"""Sealed Bid: cryptographic sealed-bid service for public e-procurement.

Public surface: ``sealed_bid.errors``, ``sealed_bid.client``, ``sealed_bid.crypto.seal``
(bidder-side sealing), ``sealed_bid.domain``. Everything else is the service's own.
"""

__version__ = "0.1.0"
