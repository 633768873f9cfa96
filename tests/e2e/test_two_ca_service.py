"""The two-CA test PKI (tests/ca_bridge/pki/two-ca.yml) against the running service: both
CAs are imported into the service's trust store, their CRL and OCSP responders run on
127.0.0.1, and every bidder submits a real sealed bid signed with its certomancer key.
Good bidders of both CAs are accepted; every bad certificate is refused at submission
with its exact code and gRPC status.

CA A is imported without CRLs, so its bidders' revocation status is fetched (OCSP first,
the service's default); CA B is imported with its current CRLs, so the service decides
from the trust store's CRLs without a request. That gives one revocation by OCSP and one
by CRL through the service's one shared RevocationSource.

A certificate under another certificate policy (``wrong-policy``) is refused on a tender
that requires the tender-signing policy and accepted on one that requires none.

Time: the PKI's dates are fixed (good certificates 2024..2045, revocations dated 2025),
and the animator issues CRLs and OCSP responses as of ``PkiServer.clock``, which every
submission here sets to the service's ManualClock, so the revocation information is
current at the service's time however far other tests moved the clock (forward).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest

from sealed_bid.client import ServiceError
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import seal_bid
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import TenderId
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.ca_bridge.pki.fixtures import (
    CA_A,
    CA_B,
    TwoCaPki,
    build_two_ca_pki,
    signing_key,
)
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.server, pytest.mark.token]

# The service's ids for the two certomancer CAs (distinct from the dev PKI's).
SERVICE_CA_A = "certomancer-ca-a"
SERVICE_CA_B = "certomancer-ca-b"

# The latest revocation date in two-ca.yml: the service clock must be past it, and before
# the good certificates' end (2045), for the PKI to mean what its names say.
LAST_REVOCATION = datetime(2025, 9, 1, tzinfo=UTC)
GOOD_UNTIL = datetime(2045, 1, 1, tzinfo=UTC)

_tender_ids = count(1)


@dataclass(frozen=True)
class TwoCaService:
    service: Service
    pki: TwoCaPki


def _write_trust_directory(pki: TwoCaPki, directory: Path) -> Path:
    """The ``TrustStore.from_directory`` layout: CA A with its root and intermediates
    (its cross certificate for CA B's intermediate among them, a-interm-2 deliberately
    not), CA B with its root, intermediate and current CRLs."""
    b_crls = (pki.crl(CA_B, "b-root"), pki.crl(CA_B, "b-interm"))
    for service_id, ca_id, crls in ((SERVICE_CA_A, CA_A, ()), (SERVICE_CA_B, CA_B, b_crls)):
        material = pki.material(ca_id, crls=crls)
        for kind, items, suffix in (
            ("anchors", material.anchors, "der"),
            ("intermediates", material.intermediates, "der"),
            ("crls", material.crls, "crl"),
        ):
            folder = directory / service_id / kind
            folder.mkdir(parents=True, exist_ok=True)
            for n, der in enumerate(items):
                (folder / f"{n}.{suffix}").write_bytes(der)
    return directory


@pytest.fixture(scope="module")
def two_ca(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoCaService]:
    if service.clock.now() < LAST_REVOCATION:
        service.clock.set(LAST_REVOCATION + timedelta(days=1))  # forward only
    assert service.clock.now() < GOOD_UNTIL, "the service clock is past the PKI's lifetime"
    running = build_two_ca_pki(tmp_path_factory.mktemp("two-ca-service-pki"))
    pki = next(running)
    pki.server.clock = service.clock.now()
    store = service.app.trust_store
    report = store.import_directory(
        _write_trust_directory(pki, tmp_path_factory.mktemp("two-ca-trust")), "Operator One"
    )
    assert set(report.cas_added) == {SERVICE_CA_A, SERVICE_CA_B}
    try:
        yield TwoCaService(service, pki)
    finally:
        for ca_id in (SERVICE_CA_A, SERVICE_CA_B):
            store.remove_ca(ca_id, "Operator One")
        running.close()


def _tender(two_ca: TwoCaService, accepted: list[str], policies: tuple[str, ...] = ()) -> pb.Tender:
    now = two_ca.service.clock.now()
    return two_ca.service.operator.create_tender(
        f"TWO-CA-{next(_tender_ids):03d}-{now:%H%M%S%f}", "Bridge deck repair",
        now + timedelta(hours=1), now + timedelta(hours=2), accepted, 0, False, "require",
        policies,
    )  # fmt: skip


@pytest.fixture(scope="module")
def both_cas_tender(two_ca: TwoCaService) -> pb.Tender:
    return _tender(two_ca, [SERVICE_CA_A, SERVICE_CA_B])


def _submit(two_ca: TwoCaService, tender: pb.Tender, name: str, work: Path) -> str:
    """Seal and submit a bid signed by certificate ``<arch>/<label>``; the bid id."""
    service, pki = two_ca.service, two_ca.pki
    pki.server.clock = service.clock.now()
    signer = SoftwareSigner(signing_key(pki, name), pki.cert(name))
    form = BidForm(TenderId(tender.tender_id), name, Decimal("4200000.00"), "CNY", 120, {})
    work.mkdir(parents=True, exist_ok=True)
    package = work / "package.zip"
    with package.open("wb") as f:
        build_package(form, {}, f)
    sealed = seal_bid(
        package, signer, tender.tender_certificate, work, signing_time=service.clock.now()
    )
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return str(result.receipt.content.bid_id)


def _refusal(two_ca: TwoCaService, tender: pb.Tender, name: str, work: Path) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        _submit(two_ca, tender, name, work)
    return refused.value


def _validation_record(service: Service, tender: pb.Tender, bid_id: str) -> dict[str, object]:
    """The bid's validation record, sealed until the opening (ADR 0016): open the tender
    (its opening time is 2 h from its creation), then put the clock back."""
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2, seconds=1))
    try:
        service.operator.open_tender(tender.tender_id)
    finally:
        service.clock.set(start)
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        stored = Repository(session).get_bid(bid_id).validation_json
    assert stored is not None, "the opening keeps the unsealed record"
    record: dict[str, object] = json.loads(stored)
    return record


@pytest.mark.parametrize(
    ("name", "ca_id"),
    [
        ("ca-a/good-1", SERVICE_CA_A),
        ("ca-a/good-2", SERVICE_CA_A),
        ("ca-a/nc-inside", SERVICE_CA_A),  # inside its CA's name constraints
        ("ca-b/good-1", SERVICE_CA_B),
    ],
)
def test_good_bidders_of_both_cas_are_accepted_with_stored_evidence(
    name: str, ca_id: str, two_ca: TwoCaService, tmp_path: Path
) -> None:
    tender = _tender(two_ca, [ca_id])

    bid_id = _submit(two_ca, tender, name, tmp_path)

    record = _validation_record(two_ca.service, tender, bid_id)
    assert record["ca_id"] == ca_id
    assert record["warnings"] == []
    assert record["evidence"], "the CRL / OCSP evidence is stored with the bid"


@pytest.mark.parametrize("name", ["ca-a/good-1", "ca-b/good-1"])
def test_a_tender_accepting_both_cas_accepts_bidders_of_each(
    name: str, two_ca: TwoCaService, tmp_path: Path
) -> None:
    # Its own tender, not the shared one: reading the record means opening the tender.
    tender = _tender(two_ca, [SERVICE_CA_A, SERVICE_CA_B])
    bid_id = _submit(two_ca, tender, name, tmp_path)

    record = _validation_record(two_ca.service, tender, bid_id)
    assert record["ca_id"] in (SERVICE_CA_A, SERVICE_CA_B)


def test_cross_signed_intermediate_is_accepted_when_only_ca_a_is_accepted(
    two_ca: TwoCaService, tmp_path: Path
) -> None:
    tender = _tender(two_ca, [SERVICE_CA_A])

    bid_id = _submit(two_ca, tender, "ca-b/good-1", tmp_path)

    record = _validation_record(two_ca.service, tender, bid_id)
    assert record["ca_id"] == SERVICE_CA_A
    # The path runs through CA A's cross certificate to CA A's root.
    assert record["chain"] == [
        hashlib.sha256(two_ca.pki.cert(n)).hexdigest()
        for n in ("ca-b/good-1", "ca-a/b-interm-cross", "ca-a/a-root")
    ]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ca-a/expired", "SIGNER_EXPIRED"),
        ("ca-a/not-yet-valid", "SIGNER_NOT_YET_VALID"),
        ("ca-a/wrong-key-usage", "SIGNER_KEY_USAGE"),
        ("rogue/unknown-ca", "SIGNER_UNTRUSTED"),  # unknown CA
        ("ca-a/orphan", "SIGNER_UNTRUSTED"),  # broken chain: a-interm-2 is not published
        ("ca-a/nc-outside", "SIGNER_UNTRUSTED"),  # outside a-nc-interm's name constraints
    ],
)
def test_bad_certificate_is_refused_at_submission_with_its_code(
    name: str, code: str, both_cas_tender: pb.Tender, two_ca: TwoCaService, tmp_path: Path
) -> None:
    refused = _refusal(two_ca, both_cas_tender, name, tmp_path)

    assert (refused.code, refused.status) == (code, "PERMISSION_DENIED"), refused.message


def test_signer_revoked_by_ocsp_is_refused_from_the_fetched_ocsp_answer(
    both_cas_tender: pb.Tender, two_ca: TwoCaService, tmp_path: Path
) -> None:
    server = two_ca.pki.server
    ocsp_before = server.count("/ca-a/ocsp/a-interm")

    refused = _refusal(two_ca, both_cas_tender, "ca-a/revoked", tmp_path)

    assert (refused.code, refused.status) == ("SIGNER_REVOKED", "PERMISSION_DENIED")
    assert server.count("/ca-a/ocsp/a-interm") == ocsp_before + 1


def test_signer_revoked_by_crl_is_refused_from_the_trust_stores_crl(
    two_ca: TwoCaService, tmp_path: Path
) -> None:
    # CA B only: with CA A accepted too, the path through CA A's cross certificate is
    # tried first and the revocation is found by OCSP (CA A holds no CRLs).
    tender = _tender(two_ca, [SERVICE_CA_B])
    server = two_ca.pki.server
    ca_b_before = server.count("/ca-b/")

    refused = _refusal(two_ca, tender, "ca-b/revoked", tmp_path)

    assert (refused.code, refused.status) == ("SIGNER_REVOKED", "PERMISSION_DENIED")
    assert server.count("/ca-b/") == ca_b_before, "decided from the stored CRL, no request"


TENDER_SIGNING_POLICY = "1.3.6.1.4.1.55555.1.1"


def test_certificate_under_a_policy_the_tender_does_not_accept_is_refused(
    two_ca: TwoCaService, tmp_path: Path
) -> None:
    tender = _tender(two_ca, [SERVICE_CA_A], (TENDER_SIGNING_POLICY,))
    assert list(tender.certificate_policies) == [TENDER_SIGNING_POLICY]
    with pytest.raises(ServiceError) as refused:
        _submit(two_ca, tender, "ca-a/wrong-policy", tmp_path / "wrong")
    assert (refused.value.code, refused.value.status) == ("SIGNER_POLICY", "PERMISSION_DENIED")
    _submit(two_ca, tender, "ca-a/good-1", tmp_path / "good")  # under the required policy


def test_without_a_required_policy_any_policy_is_accepted(
    both_cas_tender: pb.Tender, two_ca: TwoCaService, tmp_path: Path
) -> None:
    _submit(two_ca, both_cas_tender, "ca-a/wrong-policy", tmp_path)
