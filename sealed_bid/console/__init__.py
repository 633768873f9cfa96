"""The opening-room console (``sealed-bid console``): a Textual TUI over the gRPC client.

It owns display only: what it shows comes from the service (``WatchOpening``, the tender
directory, the answers to its requests). It must never hold a share, a PIN or a key, and
must never show a bid count or a bidder before the service reports the opening.
"""

from sealed_bid.console.app import ConsoleApp

__all__ = ["ConsoleApp"]
