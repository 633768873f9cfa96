"""CMS SignedData (RFC 5652): making and checking the bidder's signatures.

Owns the two signature shapes of a bid: the attached inner signature (the package ZIP as
eContent) and the detached outer signature over the envelope's SHA-256. Both are DER with
definite lengths, SHA-256 only, with signed attributes contentType, messageDigest and
signingTime, and one SignerInfo whose certificate is included.

A successful check returns ``SignatureFacts``: the signature is cryptographically sound
for the content. It must never decide whether the signer is trusted (chain, revocation,
key usage: that is ca_bridge's job) or whether the signing time is acceptable (the
service's clock rules). It never holds an attached content in memory: the content is
located by offset and hashed in chunks.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sealed_bid.crypto import der
from sealed_bid.crypto.signer import Signer
from sealed_bid.errors import (
    AlgorithmRefused,
    EnvelopeNotDer,
    SignatureInvalid,
    SignatureMalformed,
)

CHUNK_SIZE = 1024 * 1024
_MAX_PART_BYTES = 4 * 1024 * 1024
"""Cap on each non-content part (certificates, signer infos); real ones are a few KiB."""

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_SHA256 = "2.16.840.1.101.3.4.2.1"
_OID_RSA = "1.2.840.113549.1.1.1"
_OID_SHA256_RSA = "1.2.840.113549.1.1.11"
_OID_RSA_PSS = "1.2.840.113549.1.1.10"
_OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

_SHA256_ALGORITHM = der.encode(der.TAG_SEQUENCE, core.ObjectIdentifier(_OID_SHA256).dump())
_SIGNATURE_ALGORITHMS = {
    # rsaEncryption with NULL parameters, as OpenSSL writes it for PKCS#1 v1.5.
    "sha256_rsa": der.encode(
        der.TAG_SEQUENCE, core.ObjectIdentifier(_OID_RSA).dump() + core.Null().dump()
    ),
    "sha256_ecdsa": der.encode(der.TAG_SEQUENCE, core.ObjectIdentifier(_OID_ECDSA_SHA256).dump()),
}


@dataclass(frozen=True)
class SignatureFacts:
    """What a successful check established about one CMS signature."""

    signer_certificate_der: bytes
    signing_time: datetime | None
    digest_algorithm: str
    """Always 'sha256' (others are refused)."""
    signature_algorithm: str
    """'sha256_rsa' (PKCS#1 v1.5), 'sha256_rsa_pss' or 'sha256_ecdsa'."""
    content_digest: bytes
    certificates_der: tuple[bytes, ...]
    """Every certificate the signature carries (the signer's among them), for chain
    building by the caller."""


# --- Signing -----------------------------------------------------------------------------
def _attribute(oid: str, value: core.Asn1Value) -> bytes:
    return der.encode(
        der.TAG_SEQUENCE,
        core.ObjectIdentifier(oid).dump() + der.encode(der.TAG_SET, value.dump()),
    )


def _utc_time(when: datetime) -> core.Asn1Value:
    if when.tzinfo is None:
        raise ValueError("signing_time must be timezone-aware")
    when = when.astimezone(UTC).replace(microsecond=0)
    # RFC 5652 11.3: UTCTime for 1950..2049, GeneralizedTime otherwise.
    if 1950 <= when.year < 2050:
        return core.UTCTime(when)
    return core.GeneralizedTime(when)


def _signer_info(signer: Signer, content_digest: bytes, signing_time: datetime) -> bytes:
    if len(content_digest) != 32:
        raise ValueError("content_digest must be a SHA-256 digest (32 bytes)")
    attributes = [
        _attribute("1.2.840.113549.1.9.3", core.ObjectIdentifier(OID_DATA)),
        _attribute("1.2.840.113549.1.9.5", _utc_time(signing_time)),
        _attribute("1.2.840.113549.1.9.4", core.OctetString(content_digest)),
    ]
    # DER SET OF: elements in ascending order of their encodings.
    attribute_bytes = b"".join(sorted(attributes))
    signature = signer.sign(der.encode(der.TAG_SET, attribute_bytes))
    certificate = asn1_x509.Certificate.load(signer.certificate_der)
    sid = cms.IssuerAndSerialNumber(
        {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
    ).dump()
    return der.encode(
        der.TAG_SEQUENCE,
        core.Integer(1).dump()
        + sid
        + _SHA256_ALGORITHM
        + der.encode(0xA0, attribute_bytes)
        + _SIGNATURE_ALGORITHMS[signer.signature_algorithm]
        + der.encode(der.TAG_OCTET_STRING, signature),
    )


def _signed_data_parts(
    signer: Signer, content_digest: bytes, signing_time: datetime, content_length: int | None
) -> tuple[bytes, bytes]:
    """(prefix, suffix) of a SignedData ContentInfo; an attached content of
    ``content_length`` bytes goes between them, a detached one (None) is absent."""
    data_oid = core.ObjectIdentifier(OID_DATA).dump()
    if content_length is None:
        encap = der.encode(der.TAG_SEQUENCE, data_oid)
        encap_total = len(encap)
    else:
        octets_header = der.encode_header(der.TAG_OCTET_STRING, content_length)
        explicit_header = der.encode_header(0xA0, len(octets_header) + content_length)
        encap_value_length = (
            len(data_oid) + len(explicit_header) + len(octets_header) + content_length
        )
        encap = (
            der.encode_header(der.TAG_SEQUENCE, encap_value_length)
            + data_oid
            + explicit_header
            + octets_header
        )
        encap_total = len(encap) + content_length
    head = core.Integer(1).dump() + der.encode(der.TAG_SET, _SHA256_ALGORITHM)
    suffix = der.encode(0xA0, signer.certificate_der) + der.encode(
        der.TAG_SET, _signer_info(signer, content_digest, signing_time)
    )
    signed_data_header = der.encode_header(der.TAG_SEQUENCE, len(head) + encap_total + len(suffix))
    signed_data_total = len(signed_data_header) + len(head) + encap_total + len(suffix)
    explicit = der.encode_header(0xA0, signed_data_total)
    oid = core.ObjectIdentifier(OID_SIGNED_DATA).dump()
    prefix = (
        der.encode_header(der.TAG_SEQUENCE, len(oid) + len(explicit) + signed_data_total)
        + oid
        + explicit
        + signed_data_header
        + head
        + encap
    )
    return prefix, suffix


def sign_detached(signer: Signer, content_digest: bytes, signing_time: datetime) -> bytes:
    """A detached SignedData (DER ContentInfo) over content whose SHA-256 is given."""
    prefix, suffix = _signed_data_parts(signer, content_digest, signing_time, None)
    return prefix + suffix


def sign_attached(signer: Signer, content: bytes, signing_time: datetime) -> bytes:
    """An attached SignedData (DER ContentInfo) carrying ``content`` as eContent."""
    prefix, suffix = _signed_data_parts(
        signer, hashlib.sha256(content).digest(), signing_time, len(content)
    )
    return prefix + content + suffix


def sign_attached_stream(
    signer: Signer, src: BinaryIO, dst: der.BinarySink, signing_time: datetime
) -> None:
    """Like ``sign_attached`` for a seekable ``src`` (from its current position to its
    end): one pass to hash, then the DER is written with lengths known up front and the
    content copied in fixed chunks."""
    start = src.tell()
    digest = hashlib.sha256()
    length = 0
    while chunk := src.read(CHUNK_SIZE):
        digest.update(chunk)
        length += len(chunk)
    prefix, suffix = _signed_data_parts(signer, digest.digest(), signing_time, length)
    dst.write(prefix)
    src.seek(start)
    copied = 0
    while chunk := src.read(CHUNK_SIZE):
        dst.write(chunk)
        copied += len(chunk)
    if copied != length:
        raise ValueError("the content changed while it was being signed")
    dst.write(suffix)


# --- Parsing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Located:
    signed_data: cms.SignedData
    """The SignedData with its eContent removed (so it is small)."""
    content: der.Tlv | None
    """The eContent OCTET STRING, if attached."""


def _locate(f: BinaryIO) -> _Located:
    """Walk the DER of a SignedData ContentInfo by offset; parse all but the eContent."""
    try:
        root = der.read_root(f)
        top = der.child_list(f, root)
        if (
            root.tag != der.TAG_SEQUENCE
            or len(top) != 2
            or top[0].tag != der.TAG_OID
            or top[1].tag != 0xA0
        ):
            raise SignatureMalformed("not a CMS ContentInfo")
        content_type = core.ObjectIdentifier.load(der.read_element(f, top[0], 256)).dotted
        if content_type != OID_SIGNED_DATA:
            raise SignatureMalformed(f"expected CMS SignedData, found {content_type}")
        inner = der.child_list(f, top[1])
        if len(inner) != 1 or inner[0].tag != der.TAG_SEQUENCE:
            raise SignatureMalformed("SignedData is not a SEQUENCE")
        parts: list[bytes] = []
        content: der.Tlv | None = None
        for field in der.child_list(f, inner[0]):
            if field.tag == der.TAG_SEQUENCE and content is None and len(parts) == 2:
                # encapContentInfo: keep eContentType, note where eContent lies.
                encap = der.child_list(f, field)
                if not encap or encap[0].tag != der.TAG_OID or len(encap) > 2:
                    raise SignatureMalformed("malformed encapContentInfo")
                if len(encap) == 2:
                    wrapper = der.child_list(f, encap[1]) if encap[1].tag == 0xA0 else []
                    if len(wrapper) != 1 or wrapper[0].tag != der.TAG_OCTET_STRING:
                        raise SignatureMalformed(
                            "eContent must be one primitive OCTET STRING (DER)"
                        )
                    content = wrapper[0]
                parts.append(der.encode(der.TAG_SEQUENCE, der.read_element(f, encap[0], 1024)))
                continue
            der.check_der_tree(f, field)
            parts.append(der.read_element(f, field, _MAX_PART_BYTES))
        signed_data = cms.SignedData.load(der.encode(der.TAG_SEQUENCE, b"".join(parts)))
        _parse_checked_parts(signed_data)
    except EnvelopeNotDer as exc:
        raise SignatureMalformed(f"the signature is not DER: {exc.message}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureMalformed(f"the signature does not parse as CMS: {exc}") from None
    return _Located(signed_data=signed_data, content=content)


def _parse_checked_parts(signed_data: cms.SignedData) -> None:
    """Force a full parse of everything verification reads, so that malformed inner parts
    fail here, not later. Unsigned attributes (e.g. a CAdES signature time stamp) are not
    read by verification and are left unparsed: asn1crypto re-encodes a nested
    TimeStampToken for seconds when asked for its native value (docs/adr/0014)."""
    for name in ("version", "digest_algorithms", "encap_content_info", "certificates", "crls"):
        signed_data[name].native  # noqa: B018
    for signer_info in signed_data["signer_infos"]:
        for name in (
            "version",
            "sid",
            "digest_algorithm",
            "signed_attrs",
            "signature_algorithm",
            "signature",
        ):
            signer_info[name].native  # noqa: B018


def _only_signer(signed_data: cms.SignedData) -> cms.SignerInfo:
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise SignatureMalformed(f"expected exactly one SignerInfo, found {len(signer_infos)}")
    signer_info: cms.SignerInfo = signer_infos[0]
    digest_oid = signer_info["digest_algorithm"]["algorithm"].dotted
    if digest_oid != _OID_SHA256:
        name = signer_info["digest_algorithm"]["algorithm"].native
        raise AlgorithmRefused(f"digest algorithm {name} is refused; sign with SHA-256")
    return signer_info


def _single_value(attribute: Any) -> Any:
    values = attribute["values"]
    if len(values) != 1:
        raise SignatureMalformed(f"signed attribute {attribute['type'].dotted} needs one value")
    return values[0]


def _signer_certificate(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo
) -> tuple[bytes, tuple[bytes, ...]]:
    certificates: list[asn1_x509.Certificate] = [
        choice.chosen
        for choice in (signed_data["certificates"] or [])
        if choice.name == "certificate"
    ]
    sid = signer_info["sid"]
    for certificate in certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            found = (
                certificate.serial_number == wanted["serial_number"].native
                and certificate.issuer == wanted["issuer"]
            )
        else:
            found = certificate.key_identifier == sid.chosen.native
        if found:
            return certificate.dump(), tuple(c.dump() for c in certificates)
    raise SignatureMalformed("the signer's certificate is not included in the signature")


def _check_signature(
    signer_info: cms.SignerInfo, certificate_der: bytes, signed_bytes: bytes
) -> str:
    algorithm = signer_info["signature_algorithm"]
    oid = algorithm["algorithm"].dotted
    signature = signer_info["signature"].native
    try:
        public_key = x509.load_der_x509_certificate(certificate_der).public_key()
    except ValueError as exc:
        raise SignatureMalformed(f"the signer's certificate does not parse: {exc}") from None
    verify: Callable[[], None]
    if oid in (_OID_RSA, _OID_SHA256_RSA):
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureMalformed("an RSA signature needs an RSA certificate")
        rsa_key = public_key
        name = "sha256_rsa"

        def verify() -> None:
            rsa_key.verify(signature, signed_bytes, padding.PKCS1v15(), hashes.SHA256())

    elif oid == _OID_RSA_PSS:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureMalformed("an RSA-PSS signature needs an RSA certificate")
        params = algorithm["parameters"]
        mgf = params["mask_gen_algorithm"]
        if (
            params["hash_algorithm"]["algorithm"].dotted != _OID_SHA256
            or mgf["algorithm"].native != "mgf1"
            or mgf["parameters"]["algorithm"].dotted != _OID_SHA256
            or params["trailer_field"].native != "trailer_field_bc"
        ):
            raise AlgorithmRefused("RSA-PSS is accepted only with SHA-256 and MGF1-SHA-256")
        salt_length = params["salt_length"].native
        pss_key = public_key
        name = "sha256_rsa_pss"

        def verify() -> None:
            pss_key.verify(
                signature,
                signed_bytes,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length),
                hashes.SHA256(),
            )

    elif oid in (_OID_ECDSA_SHA256, _OID_EC_PUBLIC_KEY):
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SignatureMalformed("an ECDSA signature needs an EC certificate")
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise AlgorithmRefused(f"ECDSA curve {public_key.curve.name} is refused")
        ec_key = public_key
        name = "sha256_ecdsa"

        def verify() -> None:
            ec_key.verify(signature, signed_bytes, ec.ECDSA(hashes.SHA256()))

    else:
        raise AlgorithmRefused(
            f"signature algorithm {algorithm['algorithm'].native} is refused; "
            "use RSA PKCS#1 v1.5, RSA-PSS or ECDSA with SHA-256"
        )
    try:
        verify()
    except InvalidSignature:
        raise SignatureInvalid("the signature does not verify with the signer's key") from None
    return name


def _verify(signed_data: cms.SignedData, content_digest: bytes) -> SignatureFacts:
    signer_info = _only_signer(signed_data)
    signed_attrs = signer_info["signed_attrs"]
    if not isinstance(signed_attrs, cms.CMSAttributes) or len(signed_attrs) == 0:
        raise SignatureMalformed("signed attributes are required")
    seen: dict[str, Any] = {}
    for attribute in signed_attrs:
        oid = attribute["type"].dotted
        if oid in seen:
            raise SignatureMalformed(f"signed attribute {oid} appears twice")
        seen[oid] = attribute
    if "1.2.840.113549.1.9.3" not in seen or "1.2.840.113549.1.9.4" not in seen:
        raise SignatureMalformed("signed attributes contentType and messageDigest are required")
    econtent_type = signed_data["encap_content_info"]["content_type"].dotted
    if _single_value(seen["1.2.840.113549.1.9.3"]).dotted != econtent_type:
        raise SignatureInvalid("the contentType attribute does not match eContentType")
    message_digest = _single_value(seen["1.2.840.113549.1.9.4"]).native
    if not isinstance(message_digest, bytes) or not hmac.compare_digest(
        message_digest, content_digest
    ):
        raise SignatureInvalid("the content does not match the signed messageDigest")
    signing_time: datetime | None = None
    if "1.2.840.113549.1.9.5" in seen:
        value = _single_value(seen["1.2.840.113549.1.9.5"]).native
        if not isinstance(value, datetime):
            raise SignatureMalformed("signingTime is not a time")
        signing_time = value.astimezone(UTC)
    certificate_der, certificates = _signer_certificate(signed_data, signer_info)
    # The signature covers the DER SET OF attributes: the [0] IMPLICIT tag becomes SET.
    signed_bytes = bytes([der.TAG_SET]) + signed_attrs.dump()[1:]
    signature_algorithm = _check_signature(signer_info, certificate_der, signed_bytes)
    return SignatureFacts(
        signer_certificate_der=certificate_der,
        signing_time=signing_time,
        digest_algorithm="sha256",
        signature_algorithm=signature_algorithm,
        content_digest=content_digest,
        certificates_der=certificates,
    )


def _parse_guarded(f: BinaryIO) -> _Located:
    located = _locate(f)
    try:
        _only_signer(located.signed_data)
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureMalformed(f"the SignerInfo does not parse: {exc}") from None
    return located


def _verify_guarded(signed_data: cms.SignedData, content_digest: bytes) -> SignatureFacts:
    try:
        return _verify(signed_data, content_digest)
    except (ValueError, TypeError, KeyError) as exc:
        # asn1crypto parses lazily; a malformed inner field surfaces here.
        raise SignatureMalformed(f"the SignerInfo does not parse: {exc}") from None


def verify_detached(signature_der: bytes, content_digest: bytes) -> SignatureFacts:
    """Check a detached SignedData over content whose SHA-256 is ``content_digest``."""
    located = _parse_guarded(io.BytesIO(signature_der))
    if located.content is not None:
        raise SignatureMalformed("expected a detached signature, found attached content")
    return _verify_guarded(located.signed_data, content_digest)


def _verify_attached_file(f: BinaryIO) -> tuple[SignatureFacts, int, int]:
    located = _parse_guarded(f)
    if located.content is None:
        raise SignatureMalformed("expected an attached signature, found no content")
    content = located.content
    digest = hashlib.sha256()
    f.seek(content.value_offset)
    remaining = content.length
    while remaining:
        chunk = f.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise SignatureMalformed("the content is truncated")
        digest.update(chunk)
        remaining -= len(chunk)
    facts = _verify_guarded(located.signed_data, digest.digest())
    return facts, content.value_offset, content.length


def verify_attached(der_bytes: bytes) -> tuple[SignatureFacts, bytes]:
    """Check an attached SignedData held in memory; return its facts and content."""
    facts, offset, length = _verify_attached_file(io.BytesIO(der_bytes))
    return facts, der_bytes[offset : offset + length]


def verify_attached_file(path: Path) -> tuple[SignatureFacts, int, int]:
    """Check an attached SignedData file with a streaming hash; return its facts and the
    (offset, length) of the content inside the file."""
    with path.open("rb") as f:
        return _verify_attached_file(f)
