"""One real service for the end-to-end tests: a SoftHSM2 token, the dev PKI, SQLite, a
real gRPC server with TLS on 127.0.0.1 and a real RFC 3161 time-stamping authority over
HTTP on 127.0.0.1, built once per session. The clock is a ManualClock — the only thing
these tests control directly; the TSA follows it, shifted by ``Service.tsa_skew`` (a test
that sets it negative plays a service whose own clock runs ahead of the true time)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sealed_bid.api.server import SealedBidServer
from sealed_bid.app import Application, build_server, init_local, open_application
from sealed_bid.cli.common import load_signer
from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.config import Settings
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.crypto.share_envelope import open_share
from sealed_bid.devpki import DevPki
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.clock import ManualClock
from sealed_bid.domain.ids import TenderId
from sealed_bid.timestamping.dev_tsa import DevTsaServer, load_dev_tsa, load_dev_tsa_signer
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc


class AuthorityClient:
    """``TrustService`` on the authority port with a client certificate; refusals raise
    ``ServiceError`` as the SDK's do (the SDK has no TrustService client yet)."""

    def __init__(self, address: str, root_pem: bytes, key_pem: bytes, chain_pem: bytes) -> None:
        credentials = grpc.ssl_channel_credentials(root_pem, key_pem, chain_pem)
        self._channel = grpc.secure_channel(address, credentials)
        self._trust = rpc.TrustServiceStub(self._channel)

    def publish_crl(self, ca_id: str, crl_der: bytes) -> pb.TrustChangeResponse:
        request = pb.PublishCrlRequest(ca_id=ca_id, crl=crl_der)
        try:
            return self._trust.PublishCrl(request, timeout=30)
        except grpc.RpcError as exc:
            raise ServiceError.from_rpc(exc) from None

    def publish_intermediate(self, ca_id: str, cert_der: bytes) -> pb.TrustChangeResponse:
        request = pb.PublishIntermediateRequest(ca_id=ca_id, certificate=cert_der)
        try:
            return self._trust.PublishIntermediate(request, timeout=30)
        except grpc.RpcError as exc:
            raise ServiceError.from_rpc(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AuthorityClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Service:
    settings: Settings
    pki: DevPki
    clock: ManualClock
    app: Application
    server: SealedBidServer
    bidder: SealedBidClient
    operator: SealedBidClient
    observer: SealedBidClient
    authority: AuthorityClient
    """The dev bidder CA's authority (OU=ca-authority) on the authority port."""
    tsa: DevTsaServer
    skew: list[timedelta] = field(default_factory=lambda: [timedelta(0)])
    """[0]: how far the TSA's time lies from the service clock (negative: behind it)."""
    tsa_down: list[bool] = field(default_factory=lambda: [False])
    """[0]: True makes the TSA fail every request (its clock raises; it answers an error)."""

    @property
    def tsa_skew(self) -> timedelta:
        return self.skew[0]

    @tsa_skew.setter
    def tsa_skew(self, value: timedelta) -> None:
        self.skew[0] = value

    def authority_client(self, key_pem: bytes, chain_pem: bytes) -> AuthorityClient:
        """Another client of the authority port, with the given client certificate."""
        address = f"127.0.0.1:{self.server.authority_port}"
        return AuthorityClient(
            address, self.pki.platform_root.cert.read_bytes(), key_pem, chain_pem
        )


@pytest.fixture(scope="session")
def service(e2e_settings: Settings, session_start: datetime) -> Iterator[Service]:
    pki = init_local(e2e_settings, session_start)
    clock = ManualClock(session_start)
    skew = [timedelta(0)]
    down = [False]

    def tsa_clock() -> datetime:
        if down[0]:
            raise RuntimeError("the test TSA is down")
        return clock.now() + skew[0]

    tsa = DevTsaServer(
        load_dev_tsa_signer(load_dev_tsa(e2e_settings.pki_path / "tsa")), clock=tsa_clock
    ).start()
    settings = dataclasses.replace(e2e_settings, tsa_url=tsa.url)
    app = open_application(settings, clock)
    server = build_server(app, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    server.start()
    root = pki.platform_root.cert.read_bytes()
    bidder = SealedBidClient(f"127.0.0.1:{server.public_port}", root)
    operator = SealedBidClient(
        f"127.0.0.1:{server.operator_port}",
        root,
        pki.operator.key.read_bytes(),
        pki.operator.cert.read_bytes(),
    )
    observer = SealedBidClient(
        f"127.0.0.1:{server.operator_port}",
        root,
        pki.observer.key.read_bytes(),
        pki.observer.cert.read_bytes(),
    )
    authority = AuthorityClient(
        f"127.0.0.1:{server.authority_port}",
        root,
        pki.bidder_authority.key.read_bytes(),
        pki.bidder_authority.cert.read_bytes(),
    )
    yield Service(
        settings, pki, clock, app, server, bidder, operator, observer, authority, tsa, skew, down
    )
    for client in (bidder, operator, observer, authority):
        client.close()
    server.stop()
    app.close()
    tsa.stop()


_ids = itertools.count(1)


def new_tender(
    service: Service,
    *,
    deadline_in: timedelta = timedelta(hours=1),
    opening_after_deadline: timedelta = timedelta(minutes=30),
    max_envelope_bytes: int = 0,
    count_visible: bool = False,
) -> pb.Tender:
    now = service.clock.now()
    return service.operator.create_tender(
        f"T-{next(_ids):04d}",
        "Road resurfacing, lot 1",
        now + deadline_in,
        now + deadline_in + opening_after_deadline,
        ["dev-bidder-ca"],
        max_envelope_bytes,
        count_visible,
    )


def seal_for(
    service: Service,
    tender: pb.Tender,
    bidder: str,
    workdir: Path,
    *,
    price: str = "1000000.00",
    tender_id: str | None = None,
    signing_time: datetime | None = None,
) -> SealedBid:
    files = service.pki.bidders[bidder]
    form = BidForm(
        tender_id=TenderId(tender_id or tender.tender_id),
        bidder_name=files.company,
        price=__import__("decimal").Decimal(price),
        currency="CNY",
        duration_days=180,
        fields={"warranty_years": "3"},
    )
    workdir.mkdir(parents=True, exist_ok=True)
    doc = workdir / "technical-proposal.txt"
    doc.write_text(f"Technical proposal of {files.company}\n", encoding="utf-8")
    package = workdir / "package.zip"
    with package.open("wb") as f:
        build_package(form, {"technical-proposal.txt": doc}, f)
    signer = load_signer(files.key, files.cert)
    return seal_bid(
        package,
        signer,
        tender.tender_certificate,
        workdir,
        oaep_hash="sha1",
        signing_time=signing_time or service.clock.now(),
    )


@pytest.fixture
def clock_restored(service: Service) -> Iterator[None]:
    """Put the shared clock back after a test that moves it past an opening time: tests
    that sign with the real time (the openssl CLI) need it near the real time."""
    saved = service.clock.now()
    yield
    service.clock.set(saved)


@pytest.fixture(scope="session")
def officers(service: Service) -> Iterator[dict[str, SealedBidClient]]:
    """Each dev opening officer's own client on the operator port (its own certificate)."""
    root = service.pki.platform_root.cert.read_bytes()
    clients = {
        name: SealedBidClient(
            f"127.0.0.1:{service.server.operator_port}",
            root,
            service.pki.officers[name].key.read_bytes(),
            service.pki.officers[name].cert.read_bytes(),
        )
        for name in service.pki.officers
    }
    yield clients
    for client in clients.values():
        client.close()


def officer_share(service: Service, client: SealedBidClient, name: str, tender_id: str) -> bytes:
    """What an officer does on its own machine: fetch its share, decrypt it locally."""
    key = load_pem_private_key(service.pki.officers[name].key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return open_share(client.get_officer_share(tender_id).sealed_share, key)


def cert_der(path: Path) -> bytes:
    """A PEM certificate file as DER."""
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
