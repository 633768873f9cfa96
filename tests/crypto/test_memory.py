"""Sealing and opening stream: memory stays flat however large the package is."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import open_bid, seal_bid
from sealed_bid.domain.bid_form import BidForm

from .conftest import Party

PAYLOAD = 64 * 1024 * 1024
BOUND = 8 * 1024 * 1024
"""Peak traced allocations allowed: 1/8 of the payload, a few 1 MiB chunks."""


@pytest.fixture(scope="module")
def large_package(tmp_path_factory: pytest.TempPathFactory, form: BidForm) -> Path:
    directory = tmp_path_factory.mktemp("large")
    document = directory / "drawings.bin"
    with document.open("wb") as f:
        for _ in range(PAYLOAD // (1024 * 1024)):
            f.write(os.urandom(1024 * 1024))
    package = directory / "package.zip"
    with package.open("wb") as dst:
        build_package(form, {"drawings.bin": document}, dst)
    return package


def test_sealing_and_opening_64_MiB_keeps_peak_memory_flat(
    large_package: Path, bidder: Party, tender: Party, tmp_path: Path
) -> None:
    signer, transport = bidder.signer, tender.key_transport
    tracemalloc.start()
    try:
        sealed = seal_bid(large_package, signer, tender.certificate_der, tmp_path / "out")
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        opened = open_bid(
            sealed.envelope_path, transport, tender.certificate_der, tmp_path / "work"
        )
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sealed.size > PAYLOAD
    assert opened.package.documents[0].size == PAYLOAD
    assert seal_peak < BOUND, f"sealing peaked at {seal_peak} bytes"
    assert open_peak < BOUND, f"opening peaked at {open_peak} bytes"
