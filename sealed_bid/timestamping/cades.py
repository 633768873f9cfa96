"""CAdES signature time-stamps: a TSA token over a CMS signature, carried as the unsigned
attribute id-aa-signatureTimeStampToken (RFC 3161 Appendix A, RFC 5126 6.1.1).

It owns the byte-level splice that adds the token to the single SignerInfo of a DER
SignedData: everything else (signed attributes, signature, content, certificates) is
copied byte for byte, so the signature still verifies. It must never re-encode or
re-order what the signature covers, and it never verifies the token's trust
(``rfc3161.verify_token`` does, with the digest from ``signature_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass

from asn1crypto import cms, core

from sealed_bid.crypto import der
from sealed_bid.errors import EnvelopeNotDer, SignatureMalformed, TimestampInvalid
from sealed_bid.timestamping.rfc3161 import TimestampToken, message_imprint_of

OID_SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # noqa: S105  (an OID)
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TAG_UNSIGNED_ATTRS = 0xA1
_MAX_ATTRIBUTES = 64


def signature_timestamp_attribute(token: TimestampToken) -> cms.CMSAttribute:
    """The unsigned attribute id-aa-signatureTimeStampToken carrying ``token``."""
    # Loaded from bytes, not built from a parsed ContentInfo: asn1crypto re-encodes a
    # built structure field by field (seconds for one token) and might alter its bytes.
    return cms.CMSAttribute.load(_attribute_der(token.der))


def signature_digest(signed_data_der: bytes) -> bytes:
    """SHA-256 of the signature value of the SignedData's single SignerInfo: the digest a
    signature time-stamp covers."""
    layout = _locate(signed_data_der)
    return hashlib.sha256(layout.signature_value).digest()


def add_unsigned_timestamp(signed_data_der: bytes, token_der: bytes) -> bytes:
    """The same DER SignedData with ``token_der`` added as an unsigned
    signatureTimeStampToken attribute of its single SignerInfo.

    The token must stamp ``signature_digest(signed_data_der)`` (TimestampInvalid
    otherwise); its trust is not checked here. Existing unsigned attributes are kept.
    """
    layout = _locate(signed_data_der)
    expected = hashlib.sha256(layout.signature_value).digest()
    if not hmac.compare_digest(message_imprint_of(token_der), expected):
        raise TimestampInvalid(
            "the time-stamp token does not cover this signature's value", check="imprint"
        )
    attribute = _attribute_der(token_der)
    # DER SET OF: elements in ascending order of their encodings.
    unsigned = der.encode(_TAG_UNSIGNED_ATTRS, b"".join(sorted([*layout.unsigned, attribute])))
    signer_info = der.encode(der.TAG_SEQUENCE, layout.signer_info_head + unsigned)
    return _rebuild(signed_data_der, layout.path, signer_info)


def signature_timestamp_of(signed_data_der: bytes) -> bytes | None:
    """The DER of the first signatureTimeStampToken in the single SignerInfo's unsigned
    attributes, or None when there is none (CAdES allows several: the first in the SET's
    DER order is given)."""
    layout = _locate(signed_data_der)
    for attribute in layout.unsigned:
        f = io.BytesIO(attribute)
        try:
            root = der.read_root(f)
            parts = der.child_list(f, root, 2)
            if len(parts) != 2 or parts[0].tag != der.TAG_OID or parts[1].tag != der.TAG_SET:
                raise SignatureMalformed("an unsigned attribute is not a SEQUENCE {OID, SET}")
            oid = core.ObjectIdentifier.load(der.read_element(f, parts[0], 256)).dotted
            if oid != OID_SIGNATURE_TIME_STAMP_TOKEN:
                continue
            values = der.child_list(f, parts[1], _MAX_ATTRIBUTES)
            if not values:
                raise SignatureMalformed("a signatureTimeStampToken attribute has no value")
            return der.read_element(f, values[0], len(attribute))
        except EnvelopeNotDer as exc:
            raise SignatureMalformed(f"an unsigned attribute is not DER: {exc.message}") from None
    return None


def _attribute_der(token_der: bytes) -> bytes:
    return der.encode(
        der.TAG_SEQUENCE,
        core.ObjectIdentifier(OID_SIGNATURE_TIME_STAMP_TOKEN).dump()
        + der.encode(der.TAG_SET, token_der),
    )


@dataclass(frozen=True)
class _Layout:
    path: tuple[der.Tlv, ...]
    """ContentInfo, [0], SignedData, signerInfos, the SignerInfo: outermost first."""
    signer_info_head: bytes
    """The SignerInfo's fields before unsignedAttrs, verbatim."""
    signature_value: bytes
    unsigned: tuple[bytes, ...]
    """Each existing unsigned attribute's full encoding."""


def _locate(data: bytes) -> _Layout:
    f = io.BytesIO(data)
    size = len(data)
    try:
        root = der.read_root(f)
        top = der.child_list(f, root)
        if root.tag != der.TAG_SEQUENCE or len(top) != 2 or top[1].tag != 0xA0:
            raise SignatureMalformed("not a CMS ContentInfo")
        content_type = core.ObjectIdentifier.load(der.read_element(f, top[0], 256)).dotted
        if content_type != _OID_SIGNED_DATA:
            raise SignatureMalformed(f"expected CMS SignedData, found {content_type}")
        inner = der.child_list(f, top[1])
        if len(inner) != 1 or inner[0].tag != der.TAG_SEQUENCE:
            raise SignatureMalformed("SignedData is not a SEQUENCE")
        fields = der.child_list(f, inner[0], 8)
        signer_infos = fields[-1] if fields else None
        if signer_infos is None or signer_infos.tag != der.TAG_SET or len(fields) < 4:
            raise SignatureMalformed("SignedData has no signerInfos")
        infos = der.child_list(f, signer_infos, 2)
        if len(infos) != 1 or infos[0].tag != der.TAG_SEQUENCE:
            raise SignatureMalformed(f"expected exactly one SignerInfo, found {len(infos)}")
        signer_info = infos[0]
        parts = der.child_list(f, signer_info, 8)
        unsigned: tuple[bytes, ...] = ()
        if parts and parts[-1].tag == _TAG_UNSIGNED_ATTRS:
            attributes = der.child_list(f, parts[-1], _MAX_ATTRIBUTES)
            unsigned = tuple(der.read_element(f, a, size) for a in attributes)
            parts = parts[:-1]
        signatures = [p for p in parts if p.tag == der.TAG_OCTET_STRING]
        if len(signatures) != 1 or parts[-1] is not signatures[0]:
            raise SignatureMalformed("the SignerInfo has no signature value where CMS puts it")
        head = data[parts[0].offset : parts[-1].end]
        signature_value = der.read_value(f, signatures[0], size)
    except EnvelopeNotDer as exc:
        raise SignatureMalformed(f"the signature is not DER: {exc.message}") from None
    except ValueError as exc:
        raise SignatureMalformed(f"the signature does not parse as CMS: {exc}") from None
    return _Layout(
        path=(root, top[1], inner[0], signer_infos, signer_info),
        signer_info_head=head,
        signature_value=signature_value,
        unsigned=unsigned,
    )


def _rebuild(data: bytes, path: tuple[der.Tlv, ...], new_leaf: bytes) -> bytes:
    """``data`` with the innermost element of ``path`` replaced by ``new_leaf``; every
    enclosing header is re-encoded with its new length, all other bytes are kept."""
    replacement = new_leaf
    for parent, child in zip(reversed(path[:-1]), reversed(path[1:]), strict=True):
        value = (
            data[parent.value_offset : child.offset] + replacement + data[child.end : parent.end]
        )
        replacement = der.encode(parent.tag, value)
    return replacement
