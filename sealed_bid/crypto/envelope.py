"""CMS AuthEnvelopedData (AES-256-GCM, RFC 5083/5084) and EnvelopedData (AES-256-CBC):
inspecting, sealing and opening bid envelopes as streams.

Owns the envelope's byte layout. Inspection reads only the headers and RecipientInfos and
skips the ciphertext by offset, so a 512 MiB envelope costs a few KiB of memory. It must
never hold a whole envelope or plaintext in memory, never accept BER, and never decide
*when* an envelope may be opened (that is the service's clock rule): ``decrypt_envelope``
decrypts whenever it is called with a key transport.

Key transport is RSAES-OAEP only; PKCS#1 v1.5 recipients are reported so the caller can
refuse them precisely. SoftHSM2 unwraps OAEP only with SHA-1, so sealing takes the OAEP
hash as a parameter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from sealed_bid.crypto import der
from sealed_bid.crypto.signer import KeyTransport
from sealed_bid.crypto.software_signer import OAEP_HASHES, oaep_padding
from sealed_bid.errors import (
    AlgorithmRefused,
    DecryptionFailed,
    EnvelopeNotCms,
    EnvelopeNotDer,
    EnvelopeWrongContentType,
    KeyTransportFailed,
)

CHUNK_SIZE = 1024 * 1024
_MAX_HEADER_PART = 1024 * 1024
"""Cap on RecipientInfos and algorithm identifiers; real ones are under a KiB each."""
_MAX_RECIPIENTS = 64

OID_DATA = "1.2.840.113549.1.7.1"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
_OID_AES256_GCM = "2.16.840.1.101.3.4.1.46"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_OID_RSA = "1.2.840.113549.1.1.1"
_OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_KNOWN_CONTENT_TYPES = {
    "1.2.840.113549.1.7.1": "data",
    "1.2.840.113549.1.7.2": "signedData",
    "1.2.840.113549.1.7.5": "digestedData",
    "1.2.840.113549.1.7.6": "encryptedData",
    "1.2.840.113549.1.9.16.1.2": "authenticatedData",
    "1.2.840.113549.1.9.16.1.9": "compressedData",
}

ContentType = Literal["authEnvelopedData", "envelopedData"]
ContentAlgorithm = Literal["aes256_gcm", "aes256_cbc"]
KeyEncryption = Literal["rsaes_oaep", "rsaes_pkcs1v15", "unsupported"]


@dataclass(frozen=True)
class Recipient:
    """One RecipientInfo as found in an envelope."""

    issuer_der: bytes | None
    serial: int | None
    subject_key_identifier: bytes | None
    key_encryption: KeyEncryption
    oaep_hash: str | None
    encrypted_key: bytes

    def matches(self, certificate_der: bytes) -> bool:
        """Whether this RecipientInfo addresses the key of ``certificate_der``."""
        certificate = asn1_x509.Certificate.load(certificate_der)
        if self.issuer_der is not None and self.serial is not None:
            return bool(
                certificate.serial_number == self.serial
                and certificate.issuer == asn1_x509.Name.load(self.issuer_der)
            )
        if self.subject_key_identifier is not None:
            return bool(certificate.key_identifier == self.subject_key_identifier)
        return False


@dataclass(frozen=True)
class EnvelopeInfo:
    """The envelope's header, enough to pick a recipient and stream the ciphertext."""

    content_type: ContentType
    content_algorithm: ContentAlgorithm
    iv: bytes
    """The GCM nonce or the CBC IV."""
    mac: bytes | None
    """The GCM tag (AuthEnvelopedData only)."""
    icv_length: int | None
    ciphertext_offset: int
    ciphertext_length: int
    recipients: tuple[Recipient, ...]
    size: int


# --- Inspection --------------------------------------------------------------------------
def _oid(f: BinaryIO, tlv: der.Tlv) -> str:
    if tlv.tag != der.TAG_OID:
        raise EnvelopeNotCms("expected an OBJECT IDENTIFIER", offset=tlv.offset)
    try:
        return str(core.ObjectIdentifier.load(der.read_element(f, tlv, 256)).dotted)
    except ValueError:
        raise EnvelopeNotCms("malformed OBJECT IDENTIFIER", offset=tlv.offset) from None


def _oaep_hash(parameters: algos.RSAESOAEPParams) -> str:
    hash_name = parameters["hash_algorithm"]["algorithm"].native
    mgf = parameters["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise AlgorithmRefused("OAEP mask generation other than MGF1 is refused")
    if mgf["parameters"]["algorithm"].native != hash_name:
        raise AlgorithmRefused("OAEP with an MGF1 hash different from the OAEP hash is refused")
    source = parameters["p_source_algorithm"]
    if source["algorithm"].native != "p_specified" or source["parameters"].native not in (
        b"",
        None,
    ):
        raise AlgorithmRefused("OAEP with a non-empty label is refused")
    if hash_name not in OAEP_HASHES:
        raise AlgorithmRefused(f"OAEP hash {hash_name} is refused")
    return str(hash_name)


def _recipient(info: cms.RecipientInfo) -> Recipient:
    if info.name != "ktri":
        return Recipient(None, None, None, "unsupported", None, b"")
    ktri = info.chosen
    rid = ktri["rid"]
    issuer_der: bytes | None = None
    serial: int | None = None
    ski: bytes | None = None
    if rid.name == "issuer_and_serial_number":
        issuer_der = rid.chosen["issuer"].dump()
        serial = int(rid.chosen["serial_number"].native)
    else:
        ski = bytes(rid.chosen.native)
    algorithm = ktri["key_encryption_algorithm"]
    oid = algorithm["algorithm"].dotted
    encrypted_key = bytes(ktri["encrypted_key"].native)
    if oid == _OID_RSAES_OAEP:
        parameters = algorithm["parameters"]
        if parameters.native is None:
            parameters = algos.RSAESOAEPParams({})
        return Recipient(
            issuer_der, serial, ski, "rsaes_oaep", _oaep_hash(parameters), encrypted_key
        )
    if oid == _OID_RSA:
        return Recipient(issuer_der, serial, ski, "rsaes_pkcs1v15", None, encrypted_key)
    return Recipient(issuer_der, serial, ski, "unsupported", None, encrypted_key)


def _recipients(f: BinaryIO, tlv: der.Tlv) -> tuple[Recipient, ...]:
    if tlv.tag != der.TAG_SET:
        raise EnvelopeNotCms("expected the RecipientInfos SET", offset=tlv.offset)
    der.check_der_tree(f, tlv)
    try:
        infos = cms.RecipientInfos.load(der.read_element(f, tlv, _MAX_HEADER_PART), strict=True)
        if len(infos) == 0 or len(infos) > _MAX_RECIPIENTS:
            raise EnvelopeNotCms(f"{len(infos)} RecipientInfos; expected 1..{_MAX_RECIPIENTS}")
        return tuple(_recipient(info) for info in infos)
    except (ValueError, TypeError, KeyError) as exc:
        raise EnvelopeNotCms(f"RecipientInfos do not parse: {exc}") from None


def _content_algorithm(
    f: BinaryIO, tlv: der.Tlv, content_type: ContentType
) -> tuple[ContentAlgorithm, bytes, int | None]:
    """(algorithm, iv or nonce, ICV length) from a ContentEncryptionAlgorithmIdentifier."""
    if tlv.tag != der.TAG_SEQUENCE:
        raise EnvelopeNotCms("expected the content encryption AlgorithmIdentifier")
    der.check_der_tree(f, tlv)
    parts = der.child_list(f, tlv)
    oid = _oid(f, parts[0])
    params = parts[1] if len(parts) > 1 else None
    if len(parts) > 2:
        raise EnvelopeNotCms("malformed content encryption AlgorithmIdentifier")
    try:
        if oid == _OID_AES256_GCM and content_type == "authEnvelopedData" and params:
            # asn1crypto leaves GCMParameters untyped: SEQUENCE {nonce, icvLen DEFAULT 12}.
            gcm = algos.CcmParams.load(der.read_element(f, params, 1024), strict=True)
            nonce = bytes(gcm["aes_nonce"].native)
            icv_length = int(gcm["aes_icvlen"].native)
            if len(nonce) != 12:
                raise AlgorithmRefused(f"AES-GCM with a {len(nonce)}-byte nonce is refused")
            if not 12 <= icv_length <= 16:
                raise AlgorithmRefused(f"AES-GCM with a {icv_length}-byte tag is refused")
            return "aes256_gcm", nonce, icv_length
        if oid == _OID_AES256_CBC and content_type == "envelopedData" and params:
            iv = core.OctetString.load(der.read_element(f, params, 1024), strict=True).native
            if not isinstance(iv, bytes) or len(iv) != 16:
                raise EnvelopeNotCms("AES-CBC needs a 16-byte IV")
            return "aes256_cbc", iv, None
    except (ValueError, TypeError) as exc:
        raise EnvelopeNotCms(f"content encryption parameters do not parse: {exc}") from None
    name = algos.EncryptionAlgorithmId.map(oid)
    raise AlgorithmRefused(
        f"content encryption {name} in {content_type} is refused; use AES-256-GCM in "
        "AuthEnvelopedData (or AES-256-CBC in EnvelopedData)"
    )


def _inspect(f: BinaryIO) -> EnvelopeInfo:
    size = der.file_size(f)
    root = der.read_root(f, size)
    if root.tag != der.TAG_SEQUENCE:
        raise EnvelopeNotCms("not a CMS ContentInfo (no outer SEQUENCE)")
    top = der.child_list(f, root)
    if len(top) != 2 or top[0].tag != der.TAG_OID or top[1].tag != 0xA0:
        raise EnvelopeNotCms("not a CMS ContentInfo")
    oid = _oid(f, top[0])
    content_type: ContentType
    if oid == OID_AUTH_ENVELOPED_DATA:
        content_type = "authEnvelopedData"
    elif oid == OID_ENVELOPED_DATA:
        content_type = "envelopedData"
    else:
        name = _KNOWN_CONTENT_TYPES.get(oid, oid)
        raise EnvelopeWrongContentType(
            f"the envelope is CMS {name}; expected authEnvelopedData (or envelopedData)",
            content_type=name,
        )
    wrapper = der.child_list(f, top[1])
    if len(wrapper) != 1 or wrapper[0].tag != der.TAG_SEQUENCE:
        raise EnvelopeNotCms(f"{content_type} is not a SEQUENCE")
    fields = der.child_list(f, wrapper[0])
    position = 0

    def take(tag: int | None = None) -> der.Tlv | None:
        nonlocal position
        if position < len(fields) and (tag is None or fields[position].tag == tag):
            position += 1
            return fields[position - 1]
        return None

    version = take(der.TAG_INTEGER)
    if version is None:
        raise EnvelopeNotCms(f"{content_type} lacks its version")
    originator = take(0xA0)
    if originator is not None:
        der.check_der_tree(f, originator)
    recipients_tlv = take(der.TAG_SET)
    if recipients_tlv is None:
        raise EnvelopeNotCms(f"{content_type} lacks RecipientInfos")
    recipients = _recipients(f, recipients_tlv)
    content_info = take(der.TAG_SEQUENCE)
    if content_info is None:
        raise EnvelopeNotCms(f"{content_type} lacks its encrypted content info")
    content_parts = der.child_list(f, content_info)
    if len(content_parts) < 2:
        raise EnvelopeNotCms("the encrypted content info is incomplete")
    inner_type = _oid(f, content_parts[0])
    if inner_type != OID_DATA:
        raise EnvelopeNotCms(f"the encrypted content type is {inner_type}; expected id-data")
    algorithm, iv, icv_length = _content_algorithm(f, content_parts[1], content_type)
    if len(content_parts) != 3:
        raise EnvelopeNotCms("the envelope carries no encrypted content (detached?)")
    ciphertext = content_parts[2]
    if ciphertext.tag == 0xA0:
        raise EnvelopeNotDer("constructed (BER) encryptedContent; DER needs one primitive")
    if ciphertext.tag != 0x80:
        raise EnvelopeNotCms("malformed encryptedContent")
    mac: bytes | None = None
    if content_type == "authEnvelopedData":
        if take(0xA1) is not None:
            raise EnvelopeNotCms(
                "authAttrs are not accepted (OpenSSL 3.0 cannot read them); seal without"
            )
        mac_tlv = take(der.TAG_OCTET_STRING)
        if mac_tlv is None:
            raise EnvelopeNotCms("AuthEnvelopedData lacks its mac")
        mac = der.read_value(f, mac_tlv, 64)
        if len(mac) != icv_length:
            raise EnvelopeNotCms("the GCM tag length does not match aes-ICVlen")
        unauthenticated = take(0xA2)
    else:
        unauthenticated = take(0xA1)
    if unauthenticated is not None:
        der.check_der_tree(f, unauthenticated)
    if position != len(fields):
        raise EnvelopeNotCms(f"unexpected element in {content_type}")
    if algorithm == "aes256_cbc" and (ciphertext.length == 0 or ciphertext.length % 16):
        raise EnvelopeNotCms("AES-CBC ciphertext is not a whole number of blocks")
    return EnvelopeInfo(
        content_type=content_type,
        content_algorithm=algorithm,
        iv=iv,
        mac=mac,
        icv_length=icv_length,
        ciphertext_offset=ciphertext.value_offset,
        ciphertext_length=ciphertext.length,
        recipients=recipients,
        size=size,
    )


def inspect_envelope(path: Path) -> EnvelopeInfo:
    """Parse an envelope's header and RecipientInfos, skipping the ciphertext."""
    with path.open("rb") as f:
        return _inspect(f)


# --- Opening -----------------------------------------------------------------------------
def decrypt_envelope(
    path: Path,
    info: EnvelopeInfo,
    recipient: Recipient,
    key_transport: KeyTransport,
    dst: BinaryIO,
) -> int:
    """Decrypt the content to ``dst`` in fixed chunks and return the plaintext length.

    GCM authenticity is known only at the end: on ``DecryptionFailed`` plaintext has
    already been written, and the caller MUST discard everything written to ``dst``.
    """
    if recipient not in info.recipients:
        raise ValueError("the recipient does not belong to this envelope")
    if recipient.key_encryption != "rsaes_oaep" or recipient.oaep_hash is None:
        raise AlgorithmRefused(
            f"key transport {recipient.key_encryption} is refused; only RSAES-OAEP is accepted"
        )
    key = key_transport.decrypt_key(recipient.encrypted_key, recipient.oaep_hash)
    if len(key) != 32:
        raise KeyTransportFailed("the recovered content key is not an AES-256 key")
    decryptor: CipherContext
    if info.content_algorithm == "aes256_gcm":
        if info.mac is None:
            raise DecryptionFailed("AuthEnvelopedData without a tag")
        decryptor = Cipher(
            algorithms.AES(key), modes.GCM(info.iv, info.mac, min_tag_length=12)
        ).decryptor()
        unpadder = None
    else:
        decryptor = Cipher(algorithms.AES(key), modes.CBC(info.iv)).decryptor()
        unpadder = sym_padding.PKCS7(128).unpadder()
    written = 0
    with path.open("rb") as src:
        src.seek(info.ciphertext_offset)
        remaining = info.ciphertext_length
        while remaining:
            chunk = src.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise DecryptionFailed("the envelope is shorter than its header says")
            remaining -= len(chunk)
            plain = decryptor.update(chunk)
            if unpadder is not None:
                plain = unpadder.update(plain)
            dst.write(plain)
            written += len(plain)
        try:
            tail = decryptor.finalize()
            if unpadder is not None:
                tail = unpadder.update(tail) + unpadder.finalize()
        except InvalidTag:
            raise DecryptionFailed(
                "the GCM tag does not verify: the envelope was altered or damaged"
            ) from None
        except ValueError:
            raise DecryptionFailed("bad CBC padding: wrong key or damaged envelope") from None
    dst.write(tail)
    return written + len(tail)


# --- Sealing -----------------------------------------------------------------------------
def _recipient_info(certificate_der: bytes, key: bytes, oaep_hash: str) -> bytes:
    public_key = x509.load_der_x509_certificate(certificate_der).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AlgorithmRefused("the recipient certificate does not hold an RSA key")
    encrypted_key = public_key.encrypt(key, oaep_padding(oaep_hash))
    certificate = asn1_x509.Certificate.load(certificate_der)
    if oaep_hash == "sha1":
        # SHA-1 is every field's DEFAULT and DER omits defaults: an empty SEQUENCE,
        # exactly what OpenSSL writes.
        parameters = der.encode(der.TAG_SEQUENCE, b"")
    else:
        # Hash identifiers without parameters, as OpenSSL writes them (RFC 4055 allows
        # absent or NULL; absent is what every reader accepts).
        hash_id = der.encode(
            der.TAG_SEQUENCE,
            core.ObjectIdentifier(algos.DigestAlgorithmId.unmap(oaep_hash)).dump(),
        )
        mgf = der.encode(der.TAG_SEQUENCE, core.ObjectIdentifier(_OID_MGF1).dump() + hash_id)
        parameters = der.encode(der.TAG_SEQUENCE, der.encode(0xA0, hash_id) + der.encode(0xA1, mgf))
    issuer_and_serial = cms.IssuerAndSerialNumber(
        {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
    ).dump()
    return der.encode(
        der.TAG_SEQUENCE,
        core.Integer(0).dump()
        + issuer_and_serial
        + der.encode(der.TAG_SEQUENCE, core.ObjectIdentifier(_OID_RSAES_OAEP).dump() + parameters)
        + der.encode(der.TAG_OCTET_STRING, encrypted_key),
    )


def seal_envelope(
    src: BinaryIO,
    dst: der.BinarySink,
    recipient_certs_der: list[bytes],
    oaep_hash: str = "sha1",
    content_algorithm: ContentAlgorithm = "aes256_gcm",
) -> None:
    """Encrypt a seekable ``src`` (from its position to its end) to ``dst`` as DER
    AuthEnvelopedData (AES-256-GCM) or EnvelopedData (AES-256-CBC), one RSAES-OAEP
    RecipientInfo per certificate, streaming in fixed chunks."""
    if not recipient_certs_der:
        raise ValueError("an envelope needs at least one recipient")
    if oaep_hash not in OAEP_HASHES:
        raise AlgorithmRefused(f"OAEP hash {oaep_hash!r} is not supported")
    start = src.tell()
    length = src.seek(0, os.SEEK_END) - start
    src.seek(start)
    key = os.urandom(32)
    recipients = b"".join(_recipient_info(c, key, oaep_hash) for c in recipient_certs_der)
    recipient_infos = der.encode(der.TAG_SET, recipients)
    if content_algorithm == "aes256_gcm":
        iv = os.urandom(12)
        params = der.encode(
            der.TAG_SEQUENCE, der.encode(der.TAG_OCTET_STRING, iv) + core.Integer(16).dump()
        )
        algorithm_oid, outer_oid, version = _OID_AES256_GCM, OID_AUTH_ENVELOPED_DATA, 0
        ciphertext_length = length
        gcm_encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        encryptor: CipherContext = gcm_encryptor
        padder = None
        trailer_length = 2 + 16  # mac OCTET STRING
    elif content_algorithm == "aes256_cbc":
        iv = os.urandom(16)
        params = der.encode(der.TAG_OCTET_STRING, iv)
        algorithm_oid, outer_oid, version = _OID_AES256_CBC, OID_ENVELOPED_DATA, 0
        ciphertext_length = (length // 16 + 1) * 16
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        padder = sym_padding.PKCS7(128).padder()
        trailer_length = 0
    else:
        raise AlgorithmRefused(f"content algorithm {content_algorithm!r} is not supported")
    algorithm = der.encode(der.TAG_SEQUENCE, core.ObjectIdentifier(algorithm_oid).dump() + params)
    content_header = der.encode_header(0x80, ciphertext_length)
    content_info_value = core.ObjectIdentifier(OID_DATA).dump() + algorithm + content_header
    content_info_header = der.encode_header(
        der.TAG_SEQUENCE, len(content_info_value) + ciphertext_length
    )
    body_prefix = (
        core.Integer(version).dump() + recipient_infos + content_info_header + content_info_value
    )
    body_length = len(body_prefix) + ciphertext_length + trailer_length
    body_header = der.encode_header(der.TAG_SEQUENCE, body_length)
    explicit_header = der.encode_header(0xA0, len(body_header) + body_length)
    oid = core.ObjectIdentifier(outer_oid).dump()
    root_header = der.encode_header(
        der.TAG_SEQUENCE, len(oid) + len(explicit_header) + len(body_header) + body_length
    )
    dst.write(root_header + oid + explicit_header + body_header + body_prefix)
    written = 0
    while chunk := src.read(CHUNK_SIZE):
        if padder is not None:
            chunk = padder.update(chunk)
        out = encryptor.update(chunk)
        dst.write(out)
        written += len(out)
    tail = b""
    if padder is not None:
        tail = padder.finalize()
    tail = encryptor.update(tail) + encryptor.finalize()
    dst.write(tail)
    written += len(tail)
    if written != ciphertext_length:
        raise ValueError("the content changed while it was being sealed")
    if content_algorithm == "aes256_gcm":
        dst.write(der.encode(der.TAG_OCTET_STRING, gcm_encryptor.tag))
