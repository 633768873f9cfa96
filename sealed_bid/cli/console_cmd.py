"""``sealed-bid console``: the opening-room operator console (a Textual TUI).

It connects to the operator port like any operator command (``--cert``/``--key``: an
operator's certificate, or an observer's for a read-only view) and runs
``sealed_bid.console.ConsoleApp``. Textual is imported only when the console runs, so
registering it costs the other commands nothing.
"""

from __future__ import annotations

import argparse

from sealed_bid.cli import common


def add_console_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sealed-bid console`` on the top-level sub-parsers."""
    p = sub.add_parser(
        "console",
        help="the opening-room console: tenders, countdowns and live openings (operator port)",
    )
    common.add_connection_args(p, operator=True)
    p.add_argument("--tender", help="start in this tender's opening view")
    p.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    from sealed_bid.console import ConsoleApp  # noqa: PLC0415

    with common.connect(args, operator=True) as client:
        ConsoleApp(client, tender_id=args.tender).run()
    return 0
