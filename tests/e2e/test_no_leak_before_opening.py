"""No leak before the opening (ADR 0016): while a tender is sealed, nothing the service
keeps — the database file, every blob, the audit log, every other file of its state
directory, its log output at DEBUG — holds a bidder's organisation, common name or credit
code (as UTF-8 and as the bytes encoded in the certificate), the certificate's DER, its
SHA-256 (hex and raw), its serial number, its public key, or a bid's price.

After the opening the same search finds the opened bidders (the record publishes them and
the clear signatures are kept for re-validation): the search can fail. A withdrawn
bidder, and the price of a replaced bid, stay sealed even then.

Not searched: the SoftHSM2 token directory. It holds the token's objects (the tender and
platform keys, private ones encrypted under the PIN); the service never puts bidder
material on the token (the bidder tag's HMAC input is computed, never stored), and
searching a key store for needles says nothing about what the service writes. In these
tests it is not under the service's state directory anyway: the session shares one
SoftHSM configuration (tests/conftest.py).

The bidders are issued here by the dev issuing CA with names and codes made for this run,
so no other test of the session (whose tenders are opened) can have put them anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from sqlalchemy import inspect, select, text

from ca_bridge.identity import uscc_check_character
from sealed_bid.client import ServiceError
from sealed_bid.crypto.certs import issue_certificate, signing_profile
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import BidId, TenderId
from sealed_bid.domain.withdrawal import WithdrawalStatement
from sealed_bid.errors import BidSealed
from sealed_bid.service.revalidation import recheck_bid
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry, Bid
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, new_tender
from tests.e2e.support import dev_issuing_ca, read_state_files

pytestmark = [pytest.mark.server, pytest.mark.token]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_IDENTIFYING = {"organization_name", "common_name", "serial_number"}


@dataclass(frozen=True)
class NamedBidder:
    organisation: str
    common_name: str
    credit_code: str
    signer: SoftwareSigner

    @property
    def certificate_der(self) -> bytes:
        return self.signer.certificate_der

    def needles(self) -> dict[str, bytes]:
        """Every form in which this bidder's identity could be written down."""
        der = self.certificate_der
        cert = asn1_x509.Certificate.load(der)
        tbs = cert["tbs_certificate"]
        digest = hashlib.sha256(der)
        found = {
            "organisation (UTF-8)": self.organisation.encode("utf-8"),
            "common name (UTF-8)": self.common_name.encode("utf-8"),
            "credit code": self.credit_code.encode("ascii"),
            "certificate DER": der,
            "certificate SHA-256 (raw)": digest.digest(),
            "certificate SHA-256 (hex)": digest.hexdigest().encode("ascii"),
            "certificate SHA-256 (HEX)": digest.hexdigest().upper().encode("ascii"),
            "serial number (bytes)": tbs["serial_number"].contents,
            "serial number (hex)": f"{cert.serial_number:x}".encode("ascii"),
            "serial number (decimal)": str(cert.serial_number).encode("ascii"),
            "subject name (DER)": tbs["subject"].dump(),
            "public key (DER)": tbs["subject_public_key_info"].dump(),
        }
        for rdn in tbs["subject"].chosen:
            for attribute in rdn:
                name = attribute["type"].native
                if name not in _IDENTIFYING:
                    continue  # the country, "CN", is everybody's
                value = attribute["value"]
                encoded = value.chosen if isinstance(value, core.Choice) else value
                found[f"{name} (as encoded: {encoded.__class__.__name__})"] = encoded.contents
        return found


def _credit_code() -> str:
    prefix = "91350100" + "".join(secrets.choice(_USCC_CHARS) for _ in range(9))
    return prefix + uscc_check_character(prefix)


def _bidder(
    service: Service,
    organisation: str,
    common_name: str,
    *,
    organisation_type: _ASN1Type,
    common_name_type: _ASN1Type,
) -> NamedBidder:
    """A bidder certificate of the dev issuing CA: O, CN and a valid USCC serialNumber."""
    issuing, key = dev_issuing_ca(service)
    credit_code = _credit_code()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation, _type=organisation_type),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name, _type=common_name_type),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, credit_code),
        ]
    )
    now = service.clock.now()
    own = ec.generate_private_key(ec.SECP256R1())
    der = issue_certificate(
        SoftwareSigner(key, issuing.public_bytes(serialization.Encoding.DER)),
        subject, own.public_key(),
        (now - timedelta(days=1)).replace(microsecond=0),
        (now + timedelta(days=365)).replace(microsecond=0),
        None, signing_profile(),
    )  # fmt: skip
    return NamedBidder(organisation, common_name, credit_code, SoftwareSigner(own, der))


def _seal(
    tender: pb.Tender, bidder: NamedBidder, price: str, work: Path, when: datetime
) -> SealedBid:
    form = BidForm(
        TenderId(tender.tender_id), bidder.organisation, Decimal(price), "CNY", 240,
        {"contact": bidder.common_name},
    )  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    package = work / "package.zip"
    with package.open("wb") as f:
        build_package(form, {}, f)
    return seal_bid(
        package, bidder.signer, tender.tender_certificate, work, "sha1", signing_time=when
    )


def _submit(service: Service, tender: pb.Tender, sealed: SealedBid) -> pb.Receipt:
    return service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    ).receipt


# --- What is searched ----------------------------------------------------------------------
def _tables(service: Service) -> dict[str, bytes]:
    """Every row of every table, as the database returns it (the audit log included)."""
    engine = service.app.context.engine
    found: dict[str, bytes] = {}
    with unit_of_work(engine, read_only=True) as session:
        for table in inspect(engine).get_table_names():
            rows = session.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608
            found[f"table {table}"] = b"\n".join(
                b"\t".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
                for row in rows
            )
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        found["audit log"] = b"\n".join(
            f"{e.seq} {e.event} {e.tender_id} {e.bid_id} {e.fields_json}".encode()
            + (e.signature or b"")
            for e in audit
        )
    return found


def _logs(caplog: pytest.LogCaptureFixture) -> dict[str, bytes]:
    records = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    return {"log output": caplog.text.encode("utf-8"), "log records": records.encode("utf-8")}


def _search(haystacks: Mapping[str, bytes], needles: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """(needle, where) for every needle found in a haystack."""
    return [
        (label, where)
        for label, needle in needles.items()
        for where, data in haystacks.items()
        if needle in data
    ]


def _labels(found: Iterable[tuple[str, str]]) -> set[str]:
    return {label for label, _ in found}


# --- The test ------------------------------------------------------------------------------
def test_nothing_the_service_keeps_names_a_bidder_or_a_price_before_the_opening(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("sealed_bid", "ca_bridge"):
        caplog.set_level(logging.DEBUG, logger=name)
    run = secrets.token_hex(3).upper()
    qinghe = _bidder(
        service, f"泉州清河路桥工程有限公司{run}", f"清河路桥投标专用{run}",
        organisation_type=_ASN1Type.UTF8String, common_name_type=_ASN1Type.BMPString,
    )  # fmt: skip
    lianhua = _bidder(
        service, f"Lianhua Tunnelling Co., Ltd. {run}", f"Lianhua Tendering {run}",
        organisation_type=_ASN1Type.PrintableString, common_name_type=_ASN1Type.UTF8String,
    )  # fmt: skip
    baiyun = _bidder(
        service, f"白云山隧道股份有限公司{run}", f"白云山隧道{run}",
        organisation_type=_ASN1Type.BMPString, common_name_type=_ASN1Type.UTF8String,
    )  # fmt: skip
    prices = {
        "qinghe": "73141592.65",
        "lianhua first": "82718281.83",
        "lianhua": "61618033.99",
        "baiyun": "51414213.56",
    }
    tender = new_tender(service)
    assert not tender.bid_count_visible
    tid = tender.tender_id
    t0 = service.clock.now()

    receipts = [
        _submit(service, tender, _seal(tender, qinghe, prices["qinghe"], tmp_path / "q", t0)),
        _submit(
            service, tender, _seal(tender, lianhua, prices["lianhua first"], tmp_path / "l1", t0)
        ),
        _submit(service, tender, _seal(tender, baiyun, prices["baiyun"], tmp_path / "b", t0)),
    ]
    # lianhua replaces its bid; baiyun withdraws its own.
    later = t0 + timedelta(seconds=2)
    receipts.append(
        _submit(service, tender, _seal(tender, lianhua, prices["lianhua"], tmp_path / "l2", later))
    )
    withdrawn_bid = receipts[2].content.bid_id
    statement = WithdrawalStatement(TenderId(tid), BidId(withdrawn_bid)).to_bytes()
    receipts.append(service.bidder.withdraw_bid(sign_attached(baiyun.signer, statement, later)))

    # The count stays hidden, and the signer validation stays sealed.
    with pytest.raises(ServiceError) as hidden:
        service.operator.bid_count(tid)
    assert (hidden.value.code, hidden.value.status) == ("COUNT_HIDDEN", "PERMISSION_DENIED")
    ctx = service.app.context
    for receipt in receipts[:4]:
        with pytest.raises(BidSealed):
            recheck_bid(ctx.engine, ctx.blobs, ctx.trust.current(), receipt.content.bid_id)

    bidders = {"qinghe": qinghe, "lianhua": lianhua, "baiyun": baiyun}
    needles = {
        f"{who}: {label}": value
        for who, bidder in bidders.items()
        for label, value in bidder.needles().items()
    }
    needles.update({f"price of {bid}": price.encode("ascii") for bid, price in prices.items()})
    files = read_state_files(service)
    blobs = [name for name in files if name.startswith("blobs/") and "/tmp/" not in name]
    with unit_of_work(ctx.engine, read_only=True) as session:
        ours = session.scalars(select(Bid).where(Bid.tender_id == tid)).all()
        sealed_blobs = {b.sealed_identity_blob for b in ours}
        assert all(b.outer_signature_blob is None and b.validation_json is None for b in ours)
    assert "sealed-bid.db" in files and len(ours) == 4
    assert {name.rsplit("/", 1)[-1] for name in blobs} >= sealed_blobs
    haystacks = {
        **files,
        **_tables(service),
        **_logs(caplog),
        **{f"receipt {r.content.bid_id} {r.content.kind}": r.signed_receipt for r in receipts},
    }

    assert _search(haystacks, needles) == []

    # The opening: the same search now finds the opened bidders.
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))
    try:
        record = json.loads(service.operator.open_tender(tid).record_json)
    finally:
        service.clock.set(start)
    assert {row["bidder"]["credit_code"] for row in record["bids"]} == {
        qinghe.credit_code,
        lianhua.credit_code,
    }
    in_record = _search({"record": json.dumps(record, ensure_ascii=False).encode()}, needles)
    published = {
        "organisation (UTF-8)",
        "common name (UTF-8)",
        "credit code",
        "certificate SHA-256 (hex)",
    }
    opened = {f"{who}: {label}" for who in ("qinghe", "lianhua") for label in published}
    assert _labels(in_record) >= opened | {"price of qinghe", "price of lianhua"}
    kept = _labels(_search({**read_state_files(service), **_tables(service)}, needles))
    # The record (file and table) and the clear signatures kept for re-validation.
    for who in ("qinghe", "lianhua"):
        assert {f"{who}: {label}" for label in published} <= kept
        assert f"{who}: certificate DER" in kept
        assert f"{who}: serial number (bytes)" in kept
    assert "qinghe: common_name (as encoded: BMPString)" in kept
    # Never unsealed: the withdrawn bidder and the replaced bid's price.
    assert not {label for label in kept if label.startswith("baiyun: ")}
    assert "price of baiyun" not in kept and "price of lianhua first" not in kept
