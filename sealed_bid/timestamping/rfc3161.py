"""RFC 3161 time-stamp requests, and the offline verification of responses and tokens.

It owns what makes a TimeStampToken acceptable to Sealed Bid (ADR 0014): the TSTInfo
stamps exactly the SHA-256 digest asked for (and echoes the nonce), the CMS signature
over its signed attributes verifies with the TSA certificate the token names (ESS
signing-certificate attribute), and that certificate is a time-stamping certificate
(extendedKeyUsage id-kp-timeStamping only, critical) chaining to one of the caller's
trust roots at the token's genTime. Every refusal is a ``TimestampInvalid`` whose
``context["check"]`` names the failed check; a TSA that refused is ``TimestampUnavailable``.

It never does I/O (``client.py`` talks HTTP), never reads the local clock (the TSA
certificate is validated at genTime; revocation is not checked) and never decides whether
a time is early or late enough: the caller compares ``TimestampToken.gen_time``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import io
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors

from sealed_bid.crypto import der
from sealed_bid.errors import EnvelopeNotDer, TimestampInvalid, TimestampUnavailable

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_TIME_STAMPING = "1.3.6.1.5.5.7.3.8"
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
_OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"

MAX_TOKEN_BYTES = 1024 * 1024
"""Refuse absurd inputs before parsing; a real token with its certificates is a few KiB."""
MAX_STATUS_TEXT = 200
"""How much of a TSA's statusString is kept in an error message."""

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
"""Digests accepted for the TSA's own signature (the imprint is always SHA-256)."""
_OID_PATTERN = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

_T = TypeVar("_T")


@dataclass(frozen=True)
class TimestampToken:
    """A verified time-stamp token and what it proves."""

    der: bytes
    """The TimeStampToken (CMS ContentInfo, SignedData over TSTInfo), DER."""
    gen_time: datetime
    """When the TSA says it stamped the digest; timezone-aware UTC."""
    serial_number: int
    policy: str
    """The TSA policy the token was issued under, dotted OID."""
    message_imprint: bytes
    """The SHA-256 digest that was stamped."""
    tsa_certificate_der: bytes


def make_request(digest_sha256: bytes, nonce: int, policy: str | None = None) -> bytes:
    """A DER TimeStampReq (v1) for ``digest_sha256`` with ``nonce`` and certReq TRUE.

    ``policy`` (dotted OID) asks for a TSA policy; None lets the TSA choose.
    """
    _check_digest(digest_sha256)
    if not 0 < nonce < 2**128:
        raise ValueError("the nonce must be positive and at most 128 bits")
    fields: dict[str, object] = {
        "version": "v1",
        "message_imprint": _imprint(digest_sha256),
        "nonce": nonce,
        "cert_req": True,
    }
    if policy is not None:
        _check_oid(policy, "policy")
        fields["req_policy"] = policy
    request: bytes = tsp.TimeStampReq(fields).dump()
    return request


def verify_response(
    response_der: bytes,
    digest_sha256: bytes,
    nonce: int,
    trust_roots_der: Sequence[bytes],
    *,
    intermediates_der: Sequence[bytes] = (),
    policy: str | None = None,
) -> TimestampToken:
    """Check a DER TimeStampResp to a request made with ``make_request``.

    A status other than granted / grantedWithMods is ``TimestampUnavailable`` (with the
    TSA's status text and failure bits); then the token is checked as ``verify_token``
    does, with the nonce required.
    """
    status, token_der = split_response(response_der)
    name = status["status"].native
    if name not in ("granted", "granted_with_mods"):
        raise TimestampUnavailable(
            f"the time-stamping authority refused the request ({describe_status(status)})",
            status=str(name),
        )
    if token_der is None:
        raise TimestampInvalid(
            "the time-stamping authority granted the request but sent no token",
            check="response",
        )
    return verify_token(
        token_der,
        digest_sha256,
        trust_roots_der,
        nonce=nonce,
        intermediates_der=intermediates_der,
        policy=policy,
    )


def verify_token(
    token_der: bytes,
    digest_sha256: bytes,
    trust_roots_der: Sequence[bytes],
    *,
    nonce: int | None = None,
    intermediates_der: Sequence[bytes] = (),
    policy: str | None = None,
) -> TimestampToken:
    """Verify a DER TimeStampToken over ``digest_sha256`` offline; raise ``TimestampInvalid``.

    ``nonce``: when given, the token must carry it. ``intermediates_der``: untrusted CA
    certificates (and the TSA certificate, if the token lacks it) for path building.
    ``policy``: when given, the token's policy must be it. An empty or unparsable
    ``trust_roots_der`` is a ``ValueError`` (there is no system trust list here).
    """
    _check_digest(digest_sha256)
    if not trust_roots_der:
        raise ValueError("at least one trust root is needed to verify a time-stamp token")
    parsed = _parse_token(token_der)
    tst_info = parsed.tst_info
    try:
        facts = _check_tst_info(tst_info, digest_sha256, nonce, policy)
        certificate = _signer_certificate(parsed.signed_data, parsed.signer_info, intermediates_der)
        _check_signed_attributes(parsed.signer_info, parsed.econtent, certificate)
        _check_signature(parsed.signer_info, certificate)
        _check_tsa_name(tst_info, certificate)
        _check_tsa_certificate(certificate)
    except (ValueError, TypeError, KeyError) as exc:
        # asn1crypto parses lazily: a malformed inner field surfaces only when read.
        raise TimestampInvalid(
            f"the time-stamp token does not parse: {exc}", check="malformed"
        ) from None
    helpers = [*_certificates(parsed.signed_data), *(_load_cert(d) for d in intermediates_der)]
    _validate_chain(certificate, helpers, trust_roots_der, facts.gen_time)
    return TimestampToken(
        der=token_der,
        gen_time=facts.gen_time,
        serial_number=facts.serial_number,
        policy=facts.policy,
        message_imprint=digest_sha256,
        tsa_certificate_der=certificate.dump(),
    )


def split_response(response_der: bytes) -> tuple[tsp.PKIStatusInfo, bytes | None]:
    """The status of a DER TimeStampResp and its token's DER (None when absent).

    asn1crypto declares timeStampToken mandatory; RFC 3161 makes it OPTIONAL (absent in
    every refusal), so the two parts are located by a DER walk.
    """
    if len(response_der) > MAX_TOKEN_BYTES:
        raise TimestampInvalid("the time-stamp response is too large", check="malformed")
    try:
        elements = _sequence_elements(response_der)
        if not 1 <= len(elements) <= 2:
            raise ValueError("a TimeStampResp has a status and at most a token")
        status = tsp.PKIStatusInfo.load(elements[0], strict=True)
        status.native  # noqa: B018  (force the lazy parse here)
    except EnvelopeNotDer as exc:
        raise TimestampInvalid(
            f"the answer is not a DER TimeStampResp: {exc.message}", check="malformed"
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampInvalid(
            f"the answer is not an RFC 3161 TimeStampResp: {exc}", check="malformed"
        ) from None
    return status, elements[1] if len(elements) == 2 else None


def describe_status(status: tsp.PKIStatusInfo) -> str:
    """A bounded, printable description of a PKIStatusInfo for error messages."""
    parts = [str(status["status"].native)]
    fail_info = status["fail_info"]
    if fail_info.native:
        parts.append("failure: " + ", ".join(sorted(str(bit) for bit in fail_info.native)))
    texts = status["status_string"].native or []
    if texts:
        text = " / ".join(str(t) for t in texts)
        text = "".join(c if c.isprintable() else "?" for c in text)
        if len(text) > MAX_STATUS_TEXT:
            text = text[:MAX_STATUS_TEXT] + "..."
        parts.append(f"text: {text!r}")
    return "; ".join(parts)


def message_imprint_of(token_der: bytes) -> bytes:
    """The SHA-256 digest a token says it stamps, read WITHOUT any verification."""
    parsed = _parse_token(token_der)
    try:
        imprint = parsed.tst_info["message_imprint"]
        if imprint["hash_algorithm"]["algorithm"].dotted != OID_SHA256:
            raise TimestampInvalid(
                "the time-stamp token's imprint is not SHA-256", check="imprint-algorithm"
            )
        value: bytes = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampInvalid(
            f"the time-stamp token does not parse: {exc}", check="malformed"
        ) from None
    return value


# --- Parsing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _ParsedToken:
    signed_data: cms.SignedData
    signer_info: cms.SignerInfo
    econtent: bytes
    tst_info: tsp.TSTInfo


@dataclass(frozen=True)
class _TstFacts:
    gen_time: datetime
    serial_number: int
    policy: str


def _parse_token(token_der: bytes) -> _ParsedToken:
    if len(token_der) > MAX_TOKEN_BYTES:
        raise TimestampInvalid("the time-stamp token is too large", check="malformed")
    try:
        content_info = cms.ContentInfo.load(token_der, strict=True)
        if content_info["content_type"].dotted != OID_SIGNED_DATA:
            raise TimestampInvalid(
                "the time-stamp token is not a CMS SignedData", check="malformed"
            )
        signed_data: cms.SignedData = content_info["content"]
        encap = signed_data["encap_content_info"]
        if encap["content_type"].dotted != OID_TST_INFO:
            raise TimestampInvalid(
                "the time-stamp token does not carry a TSTInfo", check="malformed"
            )
        content = encap["content"]
        if not isinstance(content, core.ParsableOctetString) or content.contents is None:
            raise TimestampInvalid("the time-stamp token has no TSTInfo", check="malformed")
        econtent = bytes(content)
        tst_info = tsp.TSTInfo.load(econtent, strict=True)
        tst_info.native  # noqa: B018  (force the lazy parse here)
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise TimestampInvalid(
                f"a time-stamp token has one SignerInfo, found {len(signer_infos)}",
                check="malformed",
            )
        signer_info: cms.SignerInfo = signer_infos[0]
        signer_info.native  # noqa: B018
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampInvalid(
            f"the time-stamp token does not parse: {exc}", check="malformed"
        ) from None
    return _ParsedToken(signed_data, signer_info, econtent, tst_info)


def _sequence_elements(data: bytes) -> list[bytes]:
    f = io.BytesIO(data)
    root = der.read_root(f)
    if root.tag != der.TAG_SEQUENCE:
        raise ValueError("not a SEQUENCE")
    return [der.read_element(f, child, MAX_TOKEN_BYTES) for child in der.child_list(f, root, 4)]


# --- TSTInfo -----------------------------------------------------------------------------
def _check_tst_info(
    tst_info: tsp.TSTInfo, digest: bytes, nonce: int | None, policy: str | None
) -> _TstFacts:
    if tst_info["version"].native != "v1":
        raise TimestampInvalid("the TSTInfo version is not 1", check="malformed")
    imprint = tst_info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].dotted != OID_SHA256:
        raise TimestampInvalid(
            "the token stamps a digest other than SHA-256", check="imprint-algorithm"
        )
    if not hmac.compare_digest(imprint["hashed_message"].native, digest):
        raise TimestampInvalid(
            "the token stamps another digest than the one requested", check="imprint"
        )
    if nonce is not None and tst_info["nonce"].native != nonce:
        raise TimestampInvalid(
            "the token does not carry the request's nonce (a replayed or mixed-up answer)",
            check="nonce",
        )
    token_policy: str = tst_info["policy"].dotted
    if policy is not None and token_policy != policy:
        raise TimestampInvalid(
            f"the token was issued under policy {token_policy}, not {policy}", check="policy"
        )
    for extension in tst_info["extensions"] or []:
        if extension["critical"].native:
            raise TimestampInvalid(
                f"the token has an unknown critical extension {extension['extn_id'].dotted}",
                check="extension",
            )
    gen_time = tst_info["gen_time"].native
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise TimestampInvalid("the token's genTime is not a UTC time", check="malformed")
    return _TstFacts(
        gen_time=gen_time.astimezone(UTC),
        serial_number=int(tst_info["serial_number"].native),
        policy=token_policy,
    )


def _check_tsa_name(tst_info: tsp.TSTInfo, certificate: asn1_x509.Certificate) -> None:
    """RFC 3161 2.4.2: a tsa field, if present, must name the signing certificate."""
    tsa = tst_info["tsa"]
    if isinstance(tsa, core.Void) or tsa.native is None:
        return
    if tsa.name == "directory_name" and tsa.chosen != certificate.subject:
        raise TimestampInvalid(
            "the token's tsa name is not the subject of its signing certificate",
            check="tsa-name",
        )


# --- The CMS signature -------------------------------------------------------------------
def _certificates(signed_data: cms.SignedData) -> list[asn1_x509.Certificate]:
    return [
        choice.chosen
        for choice in (signed_data["certificates"] or [])
        if choice.name == "certificate"
    ]


def _load_cert(data: bytes) -> asn1_x509.Certificate:
    try:
        certificate = asn1_x509.Certificate.load(data, strict=True)
        certificate.native  # noqa: B018
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"a certificate given for verification does not parse: {exc}") from None
    return certificate


def _signer_certificate(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo, extra: Sequence[bytes]
) -> asn1_x509.Certificate:
    sid = signer_info["sid"]
    for certificate in [*_certificates(signed_data), *(_load_cert(d) for d in extra)]:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            found = (
                certificate.serial_number == wanted["serial_number"].native
                and certificate.issuer == wanted["issuer"]
            )
        else:
            found = certificate.key_identifier == sid.chosen.native
        if found:
            return certificate
    raise TimestampInvalid(
        "the TSA's certificate is neither in the token nor among the given certificates",
        check="certificate-missing",
    )


def _attributes(signer_info: cms.SignerInfo) -> dict[str, Any]:
    signed_attrs = signer_info["signed_attrs"]
    if not isinstance(signed_attrs, cms.CMSAttributes) or len(signed_attrs) == 0:
        raise TimestampInvalid("the token's SignerInfo has no signed attributes", check="malformed")
    seen: dict[str, Any] = {}
    for attribute in signed_attrs:
        oid = attribute["type"].dotted
        if oid in seen:
            raise TimestampInvalid(f"signed attribute {oid} appears twice", check="malformed")
        if len(attribute["values"]) != 1:
            raise TimestampInvalid(f"signed attribute {oid} needs one value", check="malformed")
        seen[oid] = attribute["values"][0]
    return seen


def _digest_name(signer_info: cms.SignerInfo) -> str:
    name = signer_info["digest_algorithm"]["algorithm"].native
    if name not in _HASHES:
        raise TimestampInvalid(
            f"the TSA signed with digest {name}; SHA-256, SHA-384 or SHA-512 is required",
            check="algorithm",
        )
    return str(name)


def _hash(name: str, data: bytes) -> bytes:
    digest = hashes.Hash(_HASHES[name]())
    digest.update(data)
    return digest.finalize()


def _check_signed_attributes(
    signer_info: cms.SignerInfo, econtent: bytes, certificate: asn1_x509.Certificate
) -> None:
    attributes = _attributes(signer_info)
    if _OID_CONTENT_TYPE not in attributes or _OID_MESSAGE_DIGEST not in attributes:
        raise TimestampInvalid(
            "the token lacks the contentType or messageDigest signed attribute",
            check="malformed",
        )
    if attributes[_OID_CONTENT_TYPE].dotted != OID_TST_INFO:
        raise TimestampInvalid(
            "the token's contentType attribute is not id-ct-TSTInfo", check="content-type"
        )
    expected = _hash(_digest_name(signer_info), econtent)
    if not hmac.compare_digest(attributes[_OID_MESSAGE_DIGEST].native, expected):
        raise TimestampInvalid(
            "the TSTInfo does not match the signed messageDigest (the token was altered)",
            check="message-digest",
        )
    v1 = attributes.get(_OID_SIGNING_CERTIFICATE)
    v2 = attributes.get(_OID_SIGNING_CERTIFICATE_V2)
    if v1 is None and v2 is None:
        raise TimestampInvalid(
            "the token lacks the ESS signing-certificate attribute RFC 3161 2.4.1 requires",
            check="signing-certificate",
        )
    cert_der = certificate.dump()
    if v1 is not None:
        _check_ess_cert_id(v1["certs"][0], "sha1", cert_der, certificate)
    if v2 is not None:
        ess = v2["certs"][0]
        algorithm = ess["hash_algorithm"]["algorithm"].native
        if algorithm not in _HASHES:
            raise TimestampInvalid(
                f"ESSCertIDv2 uses digest {algorithm}; SHA-256/384/512 is required",
                check="signing-certificate",
            )
        _check_ess_cert_id(ess, str(algorithm), cert_der, certificate)


def _check_ess_cert_id(
    ess: Any, algorithm: str, cert_der: bytes, certificate: asn1_x509.Certificate
) -> None:
    if algorithm == "sha1":
        actual = hashlib.sha1(cert_der, usedforsecurity=False).digest()
    else:
        actual = _hash(algorithm, cert_der)
    if not hmac.compare_digest(ess["cert_hash"].native, actual):
        raise TimestampInvalid(
            "the ESS signing-certificate attribute names another certificate than the "
            "one that signed",
            check="signing-certificate",
        )
    issuer_serial = ess["issuer_serial"]
    if isinstance(issuer_serial, core.Void) or issuer_serial.native is None:
        return
    names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
    if issuer_serial["serial_number"].native != certificate.serial_number or (
        certificate.issuer not in names
    ):
        raise TimestampInvalid(
            "the ESS signing-certificate attribute's issuer and serial do not match the "
            "signing certificate",
            check="signing-certificate",
        )


def _check_signature(signer_info: cms.SignerInfo, certificate: asn1_x509.Certificate) -> None:
    digest_name = _digest_name(signer_info)
    algorithm: algos.SignedDigestAlgorithm = signer_info["signature_algorithm"]
    kind = algorithm.signature_algo
    try:
        named_hash: str | None = algorithm.hash_algo
    except ValueError:
        named_hash = None  # rsaEncryption / bare ecdsa: the digestAlgorithm says it
    if named_hash is not None and named_hash != digest_name:
        raise TimestampInvalid(
            "the signature algorithm's hash differs from the SignerInfo digest algorithm",
            check="algorithm",
        )
    # The signature covers the DER SET OF attributes: the [0] IMPLICIT tag becomes SET.
    signed_bytes = bytes([der.TAG_SET]) + signer_info["signed_attrs"].dump()[1:]
    signature: bytes = signer_info["signature"].native
    chosen = _HASHES[digest_name]()
    public_key = load_der_public_key(certificate.public_key.dump())
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signed_bytes, padding.PKCS1v15(), chosen)
        elif kind == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            mgf = params["mask_gen_algorithm"]
            if (
                mgf["algorithm"].native != "mgf1"
                or mgf["parameters"]["algorithm"].native != digest_name
            ):
                raise TimestampInvalid("RSA-PSS needs MGF1 with the same hash", check="algorithm")
            pss = padding.PSS(
                mgf=padding.MGF1(_HASHES[digest_name]()),
                salt_length=params["salt_length"].native,
            )
            public_key.verify(signature, signed_bytes, pss, chosen)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, signed_bytes, ec.ECDSA(chosen))
        else:
            raise TimestampInvalid(
                f"signature algorithm {algorithm['algorithm'].native} does not fit the "
                "TSA's key or is not accepted",
                check="algorithm",
            )
    except InvalidSignature:
        raise TimestampInvalid(
            "the time-stamp token's signature does not verify with the TSA's certificate",
            check="signature",
        ) from None


# --- The TSA certificate -----------------------------------------------------------------
def _check_tsa_certificate(certificate: asn1_x509.Certificate) -> None:
    """RFC 3161 2.3: extendedKeyUsage is exactly id-kp-timeStamping and critical."""
    extension = next(
        (
            e
            for e in certificate["tbs_certificate"]["extensions"] or []
            if e["extn_id"].native == "extended_key_usage"
        ),
        None,
    )
    if extension is None:
        raise TimestampInvalid(
            "the TSA's certificate has no extended key usage; a time-stamping certificate "
            "needs id-kp-timeStamping",
            check="tsa-eku",
        )
    purposes = {p.dotted for p in extension["extn_value"].parsed}
    if purposes != {OID_TIME_STAMPING}:
        raise TimestampInvalid(
            "the TSA's certificate must have id-kp-timeStamping as its only extended key "
            f"usage, has {sorted(purposes)}",
            check="tsa-eku",
        )
    if not extension["critical"].native:
        raise TimestampInvalid(
            "the TSA's certificate's extended key usage must be critical (RFC 3161 2.3)",
            check="tsa-eku",
        )
    usage = certificate.key_usage_value
    if usage is not None and not set(usage.native) & {"digital_signature", "non_repudiation"}:
        raise TimestampInvalid(
            "the TSA's certificate's key usage does not allow signatures", check="tsa-key-usage"
        )
    basic = certificate.basic_constraints_value
    if basic is not None and basic["ca"].native:
        raise TimestampInvalid(
            "a CA certificate cannot be a TSA certificate", check="tsa-key-usage"
        )


def _validate_chain(
    certificate: asn1_x509.Certificate,
    helpers: list[asn1_x509.Certificate],
    trust_roots_der: Sequence[bytes],
    at: datetime,
) -> None:
    context = ValidationContext(
        trust_roots=[_load_cert(d) for d in trust_roots_der],
        other_certs=helpers,
        moment=at,
        allow_fetching=False,
        # Revocation of the TSA certificate is not checked (ADR 0014).
        revocation_mode="soft-fail",
    )
    validator = CertificateValidator(certificate, validation_context=context)
    try:
        _run(validator.async_validate_path)
    except cv_errors.ExpiredError as exc:
        raise TimestampInvalid(
            f"the TSA's certificate chain had expired at genTime {at:%Y-%m-%d %H:%M:%S}Z",
            check="tsa-expired",
        ) from exc
    except cv_errors.NotYetValidError as exc:
        raise TimestampInvalid(
            f"the TSA's certificate chain was not yet valid at genTime {at:%Y-%m-%d %H:%M:%S}Z",
            check="tsa-not-yet-valid",
        ) from exc
    except cv_errors.PathValidationError as exc:
        raise TimestampInvalid(
            "the TSA's certificate chain does not validate (bad signature or CA constraints)",
            check="tsa-chain",
        ) from exc
    except (cv_errors.PathBuildingError, cv_errors.ValidationError) as exc:
        raise TimestampInvalid(
            "the TSA's certificate does not chain to a trusted time-stamping root",
            check="tsa-untrusted",
        ) from exc


def _run(factory: Callable[[], Awaitable[_T]]) -> _T:
    """certvalidator is async only; callers here are synchronous (threads, CLI)."""

    async def main() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


# --- Small helpers -------------------------------------------------------------------------
def _check_digest(digest: bytes) -> None:
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ValueError("the digest must be a SHA-256 digest (32 bytes)")


def _check_oid(value: str, what: str) -> None:
    if not _OID_PATTERN.match(value):
        raise ValueError(f"{what} must be a dotted OID, got {value!r}")


def _imprint(digest: bytes) -> tsp.MessageImprint:
    # asn1crypto writes NULL parameters for SHA-256, as OpenSSL does.
    return tsp.MessageImprint({"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest})
