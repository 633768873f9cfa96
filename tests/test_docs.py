"""The user documentation cannot drift from the code: the error table, the RPCs, the
settings, the receipt and opening-record fields and the CLI commands the docs name are
checked against the code they describe."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import typing
from dataclasses import fields
from pathlib import Path

import pytest

import ca_bridge
import sealed_bid
from ca_bridge import errors as ca_errors
from sealed_bid import errors
from sealed_bid.cli.main import build_parser
from sealed_bid.config import Limits, Settings
from sealed_bid.domain import opening_record
from sealed_bid.domain.receipt import ReceiptContent

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PROTO = ROOT / "protos" / "sealed_bid" / "v1" / "sealed_bid.proto"
GUIDES = ("operator-guide.md", "bidder-guide.md")
USER_DOCS = (*GUIDES, "error-codes.md", "receipts.md", "opening-record.md")

_TABLE_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*`([A-Z_]+)`\s*\|", re.MULTILINE)


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _import_everything() -> None:
    """Error classes may live outside errors.py (e.g. AuditChainBroken in storage), and
    all_error_classes() only sees subclasses that were imported."""
    for package in (sealed_bid, ca_bridge):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


def _status_of(cls: type[Exception]) -> str:
    # From the class, as sealed_bid.api.status.status_name reads it from an instance
    # (some errors need constructor arguments, e.g. AuditChainBroken's seq).
    status = getattr(cls, "status", None)
    if status is not None:
        return str(status.value)
    return str(cls.grpc_status)  # type: ignore[attr-defined]


def _stable_codes() -> dict[str, set[str]]:
    """Every code a caller can see, with the gRPC status(es) it is sent with.

    SealedBidError's own code (INTERNAL_ERROR) is included: the servicers send it for
    unexpected failures. CaBridgeError's (CA_BRIDGE_ERROR) is an abstract base that is
    never raised, so it is left out."""
    _import_everything()
    classes = [*errors.all_error_classes(), *ca_errors.all_error_classes()]
    codes: dict[str, set[str]] = {}
    for cls in classes:
        if cls is ca_errors.CaBridgeError:
            continue
        codes.setdefault(cls.code, set()).add(_status_of(cls))
    return codes


def _documented_codes() -> list[tuple[str, str]]:
    return _TABLE_ROW.findall(_read("error-codes.md"))


def test_error_codes_md_lists_exactly_the_stable_codes() -> None:
    documented = {code for code, _ in _documented_codes()}
    actual = set(_stable_codes())

    assert not actual - documented, f"codes missing from docs/error-codes.md: {actual - documented}"
    assert not documented - actual, (
        f"docs/error-codes.md lists unknown codes: {documented - actual}"
    )


def test_error_codes_md_gives_each_code_the_status_it_is_sent_with() -> None:
    actual = _stable_codes()
    for code, statuses in actual.items():
        assert len(statuses) == 1, f"{code} maps to several gRPC statuses: {statuses}"
    wrong = {
        code: (status, next(iter(actual[code])))
        for code, status in _documented_codes()
        if code in actual and {status} != actual[code]
    }
    assert not wrong, f"documented status != code's status (doc, code): {wrong}"


def test_error_codes_md_lists_each_code_once() -> None:
    codes = [code for code, _ in _documented_codes()]
    assert len(codes) == len(set(codes)), sorted({c for c in codes if codes.count(c) > 1})


def test_error_codes_md_statuses_are_grpc_status_names() -> None:
    import grpc

    for code, status in _documented_codes():
        assert status in grpc.StatusCode.__members__, (code, status)


def _proto_rpcs() -> list[str]:
    return re.findall(r"^\s*rpc\s+(\w+)\s*\(", PROTO.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_proto_has_rpcs_to_check() -> None:
    assert len(_proto_rpcs()) >= 9


@pytest.mark.parametrize("rpc", _proto_rpcs())
def test_every_rpc_is_explained_in_a_guide(rpc: str) -> None:
    text = "\n".join(_read(name) for name in GUIDES)
    assert re.search(rf"\b{rpc}\b", text), f"{rpc} is in the proto but in neither guide"


def _setting_env_names() -> dict[str, str]:
    names = {f.name: f"SEALED_BID_{f.name.upper()}" for f in fields(Settings) if f.name != "limits"}
    names |= {f.name: f"SEALED_BID_LIMIT_{f.name.upper()}" for f in fields(Limits)}
    return names


@pytest.mark.parametrize(("setting", "env_name"), sorted(_setting_env_names().items()))
def test_every_setting_and_limit_is_in_the_operator_guide(setting: str, env_name: str) -> None:
    text = _read("operator-guide.md")
    assert f"`{setting}`" in text
    assert f"`{env_name}`" in text


def test_every_environment_variable_the_docs_and_dockerfile_name_exists() -> None:
    known = set(_setting_env_names().values())
    texts = [_read(name) for name in USER_DOCS] + [(ROOT / "Dockerfile").read_text()]
    named = {
        m
        for text in texts
        for m in re.findall(r"SEALED_BID_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_<])", text)
    }
    assert named - known == set()


def test_the_dockerfile_listens_on_the_ports_it_exposes() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    listens = re.findall(r"SEALED_BID_(PUBLIC|OPERATOR|AUTHORITY)_LISTEN=0\.0\.0\.0:(\d+)", text)
    exposed = re.search(r"^EXPOSE\s+(.+)$", text, re.MULTILINE)
    assert {name for name, _ in listens} == {"PUBLIC", "OPERATOR", "AUTHORITY"} and exposed
    assert set(exposed.group(1).split()) == {port for _, port in listens}
    assert re.search(r"^USER\s+sealed-bid", text, re.MULTILINE), "must not run as root"


def test_receipts_md_names_every_receipt_field() -> None:
    text = _read("receipts.md")
    sample = ReceiptContent.__dataclass_fields__
    for name in ("format", *sample):
        assert f"| `{name}` |" in text, name


def _record_keys() -> tuple[set[str], set[str], set[str]]:
    record = {f.name for f in fields(opening_record.OpeningRecord)} | {"format"}
    row = {f.name for f in fields(opening_record.BidRow)}
    not_opened = {f.name for f in fields(opening_record.NotOpenedBid)}
    return record, row, not_opened


def test_opening_record_md_names_every_field() -> None:
    text = _read("opening-record.md")
    record, row, not_opened = _record_keys()
    for name in record | row | not_opened:
        assert f"| `{name}` |" in text, name


def test_opening_record_md_names_every_status() -> None:
    text = _read("opening-record.md")
    statuses = set(typing.get_args(opening_record.BidStatus))
    hints = typing.get_type_hints(opening_record.NotOpenedBid)
    statuses |= set(typing.get_args(hints["status"]))
    assert statuses >= {"OPENED", "REPLACED", "WITHDRAWN"}
    for status in statuses:
        assert f"`{status}`" in text, status


def _cli_tree() -> dict[str, set[str]]:
    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    return {name: set(subcommands(sub)) for name, sub in subcommands(build_parser()).items()}


_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_COMMAND = re.compile(r"(?<![\w/.-])sealed-bid(?= ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?)")


@pytest.mark.parametrize("doc", USER_DOCS)
def test_every_cli_command_in_the_docs_exists(doc: str) -> None:
    tree = _cli_tree()
    code = "\n".join(m.group(0) for m in _CODE.finditer(_read(doc)))
    for match in _COMMAND.finditer(code):
        command, sub = match.group(1), match.group(2)
        if command == "sealed-bid":  # `docker exec <container sealed-bid> sealed-bid ...`
            continue
        assert command in tree, f"{doc}: `sealed-bid {command}` is not a command"
        if tree[command]:
            assert sub in tree[command], f"{doc}: `sealed-bid {command} {sub}` is not a command"
