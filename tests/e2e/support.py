"""Helpers the end-to-end refusal tests share: what "nothing was stored" means, raw
request streams, and signing as a dev-PKI bidder."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from sealed_bid.cli.common import load_signer
from sealed_bid.client import ServiceError
from sealed_bid.crypto.certs import CertProfile, issue_certificate, signing_profile
from sealed_bid.crypto.seal import SealedBid
from sealed_bid.crypto.signed_data import sign_detached
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry
from sealed_bid.storage.repository import Repository
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service


# --- What "nothing was stored" means ----------------------------------------------------
@dataclass(frozen=True)
class Stored:
    bids: tuple[tuple[str, str, str], ...]
    """(bid id, status, envelope digest) of every bid of the tender."""
    audit_head: int
    blobs: frozenset[str]
    tmp: frozenset[str]


def blob_files(service: Service) -> tuple[frozenset[str], frozenset[str]]:
    root = service.settings.blob_dir
    blobs = frozenset(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "tmp"
    )
    return blobs, frozenset(p.name for p in (root / "tmp").iterdir())


def stored(service: Service, tender_id: str) -> Stored:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        bids = tuple(
            (b.id, str(b.status), b.envelope_sha256)
            for b in Repository(session).all_bids(tender_id)
        )
        head = session.scalar(select(func.max(AuditEntry.seq))) or 0
    blobs, tmp = blob_files(service)
    return Stored(bids, head, blobs, tmp)


def settled(service: Service, tender_id: str, expected: Stored) -> Stored:
    """The stored state once the server has finished with a refused stream. A refusal the
    servicer raises cleans up before its status is sent; a transport refusal or a client
    cancel reaches the client first, so allow the server thread to finish (bounded)."""
    deadline = time.monotonic() + 10
    now = stored(service, tender_id)
    while now != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        now = stored(service, tender_id)
    return now


def assert_refused(
    service: Service, tender_id: str, call: Callable[[], object], code: str, status: str
) -> ServiceError:
    before = stored(service, tender_id)
    with pytest.raises(ServiceError) as refused:
        call()
    assert (refused.value.code, refused.value.status) == (code, status), refused.value.message
    assert settled(service, tender_id, before) == before
    return refused.value


ENDED_BY_CLIENT = (
    "rpc.abandoned rpc=SubmitBid",
    "rpc.refused rpc=SubmitBid code=STREAM_INCOMPLETE",
)


def assert_abandoned_not_failed(caplog: pytest.LogCaptureFixture) -> None:
    """The server logged the stream as ended by the client, not as its own failure. grpc
    either raises in the servicer's request iterator (rpc.abandoned) or just ends it
    (STREAM_INCOMPLETE), depending on when the cancellation reaches the server thread."""

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "sealed_bid.api"]

    deadline = time.monotonic() + 10
    while not set(ENDED_BY_CLIENT) & set(messages()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(ENDED_BY_CLIENT) & set(messages()), messages()
    assert not [m for m in messages() if m.startswith("rpc.failed")]


# --- Building request streams by hand ---------------------------------------------------
def header(tender_id: str, size: int) -> pb.SubmitBidRequest:
    return pb.SubmitBidRequest(header=pb.SubmissionHeader(tender_id=tender_id, envelope_size=size))


def chunk(data: bytes) -> pb.SubmitBidRequest:
    return pb.SubmitBidRequest(chunk=data)


def trailer(sha256: bytes, signature: bytes) -> pb.SubmitBidRequest:
    return pb.SubmitBidRequest(
        trailer=pb.SubmissionTrailer(envelope_sha256=sha256, outer_signature=signature)
    )


def whole(tender_id: str, data: bytes, signature: bytes) -> list[pb.SubmitBidRequest]:
    """A well-formed stream for ``data`` in two chunks."""
    half = len(data) // 2
    return [
        header(tender_id, len(data)),
        chunk(data[:half]),
        chunk(data[half:]),
        trailer(hashlib.sha256(data).digest(), signature),
    ]


def sign_as(service: Service, bidder: str, data: bytes, when: datetime | None = None) -> bytes:
    """A valid detached outer signature by ``bidder`` over ``data``."""
    files = service.pki.bidders[bidder]
    signer = load_signer(files.key, files.cert)
    return sign_detached(signer, hashlib.sha256(data).digest(), when or service.clock.now())


# --- Shared fixtures: one tender with one accepted bid, and one more envelope ----------
@dataclass(frozen=True)
class Envelope:
    data: bytes
    signature: bytes

    @classmethod
    def of(cls, sealed: SealedBid) -> Envelope:
        return cls(sealed.envelope_path.read_bytes(), sealed.outer_signature_der)


# --- Bidders made on the spot by the dev issuing CA ----------------------------------
def dev_issuing_ca(service: Service) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The dev bidder issuing CA's certificate and key (the test plays the CA)."""
    files = service.pki.bidder_issuing
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return x509.load_pem_x509_certificate(files.cert.read_bytes()), key


def new_dev_bidder(
    service: Service,
    organisation: str,
    *,
    lifetime: timedelta = timedelta(days=365),
    profile: CertProfile | None = None,
) -> SoftwareSigner:
    """A fresh EC bidder certificate from the dev issuing CA, valid from a day ago."""
    issuing, key = dev_issuing_ca(service)
    now = service.clock.now()
    own = ec.generate_private_key(ec.SECP256R1())
    der = issue_certificate(
        SoftwareSigner(key, issuing.public_bytes(serialization.Encoding.DER)),
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]),
        own.public_key(),
        (now - timedelta(days=1)).replace(microsecond=0),
        (now + lifetime).replace(microsecond=0),
        None,
        profile or signing_profile(),
    )
    return SoftwareSigner(own, der)


_READ_FILES = """
import base64, json, pathlib, sys
root = pathlib.Path(sys.argv[1])
json.dump(
    {
        str(p.relative_to(root)): base64.b64encode(p.read_bytes()).decode()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "softhsm"
    },
    sys.stdout,
)
"""


def read_state_files(service: Service) -> dict[str, bytes]:
    """Every file under the state directory (database and its WAL, blobs, records, work,
    secrets, pki), except a SoftHSM2 token directory kept there (see the module doc).

    Read by a child process: closing a file descriptor of the live SQLite database in this
    process would drop the service's POSIX locks on it (they are per process)."""
    read = subprocess.run(
        [sys.executable, "-c", _READ_FILES, str(service.settings.state_dir)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return {name: base64.b64decode(data) for name, data in json.loads(read.stdout).items()}
