"""Every outer-signature algorithm the tender advertises is really accepted end to end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token, pytest.mark.openssl]


@pytest.fixture(scope="module")
def tender_id(service: Service) -> str:
    return new_tender(service).tender_id


@pytest.mark.parametrize(
    ("bidder", "keyopts", "expected"),
    [
        ("alpha", [], "sha256_rsa"),
        ("gamma", ["-keyopt", "rsa_padding_mode:pss"], "sha256_rsa_pss"),
        ("beta", [], "sha256_ecdsa"),
    ],
)
def test_an_openssl_outer_signature_with_each_advertised_algorithm_is_accepted(
    service: Service,
    tender_id: str,
    tmp_path: Path,
    bidder: str,
    keyopts: list[str],
    expected: str,
) -> None:
    tender = service.bidder.get_tender(tender_id)
    assert expected in tender.algorithms.signature_algorithms
    sealed = seal_for(service, tender, bidder, tmp_path)
    files = service.pki.bidders[bidder]
    signature = tmp_path / "outer.p7s"
    subprocess.run(
        ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
         "-in", str(sealed.envelope_path), "-signer", str(files.cert), "-inkey", str(files.key),
         *keyopts, "-out", str(signature)],
        check=True, capture_output=True,
    )  # fmt: skip
    result = service.bidder.submit_bid(tender_id, sealed.envelope_path, signature.read_bytes())
    assert result.receipt.content.envelope_sha256 == sealed.sha256
