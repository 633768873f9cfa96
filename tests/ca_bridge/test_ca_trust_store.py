"""TrustStore: the on-disk layout it reads and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca_bridge.errors import CertificateMalformed, TrustStoreError
from ca_bridge.trust_store import CaMaterial, TrustStore
from sealed_bid.devpki import BIDDER_CA_ID, DevPki


def test_dev_pki_trust_directory_loads_as_one_ca_with_chain_and_crls(
    trust_store: TrustStore, ca_ders: dict[str, bytes]
) -> None:
    assert trust_store.ca_ids() == (BIDDER_CA_ID,)
    material = trust_store.material(BIDDER_CA_ID)
    assert material.anchors == (ca_ders["root"],)
    assert material.intermediates == (ca_ders["issuing"],)
    assert set(material.crls) == {ca_ders["root_crl"], ca_ders["issuing_crl"]}


def test_der_files_and_multi_certificate_pem_files_are_read(
    tmp_path: Path, ca_ders: dict[str, bytes], dev_pki: DevPki
) -> None:
    (tmp_path / "ca-one" / "anchors").mkdir(parents=True)
    (tmp_path / "ca-one" / "anchors" / "root.der").write_bytes(ca_ders["root"])
    (tmp_path / "ca-one" / "intermediates").mkdir()
    # chain.pem holds the issuing CA and the root.
    chain = dev_pki.bidders["alpha"].chain.read_bytes()
    (tmp_path / "ca-one" / "intermediates" / "chain.pem").write_bytes(chain)

    store = TrustStore.from_directory(tmp_path)

    assert store.material("ca-one").anchors == (ca_ders["root"],)
    assert store.material("ca-one").intermediates == (ca_ders["issuing"], ca_ders["root"])


def test_ca_without_anchor_is_refused(tmp_path: Path, ca_ders: dict[str, bytes]) -> None:
    (tmp_path / "ca-one" / "intermediates").mkdir(parents=True)
    (tmp_path / "ca-one" / "intermediates" / "i.der").write_bytes(ca_ders["issuing"])

    with pytest.raises(TrustStoreError, match="no trust anchor"):
        TrustStore.from_directory(tmp_path)


def test_ca_id_directory_with_invalid_name_is_refused(
    tmp_path: Path, ca_ders: dict[str, bytes]
) -> None:
    (tmp_path / "Bad CA" / "anchors").mkdir(parents=True)
    (tmp_path / "Bad CA" / "anchors" / "root.der").write_bytes(ca_ders["root"])

    with pytest.raises(TrustStoreError, match="CA id"):
        TrustStore.from_directory(tmp_path)


def test_unparseable_anchor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca-one" / "anchors").mkdir(parents=True)
    (tmp_path / "ca-one" / "anchors" / "root.der").write_bytes(b"\x30\x00junk")

    with pytest.raises(TrustStoreError) as caught:
        TrustStore.from_directory(tmp_path)

    assert isinstance(caught.value.__cause__, CertificateMalformed)


def test_pem_of_the_wrong_kind_is_refused(tmp_path: Path, dev_pki: DevPki) -> None:
    (tmp_path / "ca-one" / "anchors").mkdir(parents=True)
    key_pem = dev_pki.bidder_root.key.read_bytes()
    (tmp_path / "ca-one" / "anchors" / "root.pem").write_bytes(key_pem)

    with pytest.raises(TrustStoreError, match="expected PEM"):
        TrustStore.from_directory(tmp_path)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrustStoreError, match="does not exist"):
        TrustStore.from_directory(tmp_path / "absent")


def test_unknown_ca_id_lookup_is_refused(trust_store: TrustStore) -> None:
    with pytest.raises(TrustStoreError, match="unknown CA id"):
        trust_store.material("nobody")


def test_store_cannot_be_changed_after_construction(
    trust_store: TrustStore, ca_ders: dict[str, bytes]
) -> None:
    with pytest.raises(TypeError):
        trust_store.cas["added"] = CaMaterial(anchors=(ca_ders["rogue"],))  # type: ignore[index]


def test_material_with_garbage_crl_is_refused(ca_ders: dict[str, bytes]) -> None:
    with pytest.raises(CertificateMalformed):
        CaMaterial(anchors=(ca_ders["root"],), crls=(b"\x30\x03\x02\x01\x00",))
