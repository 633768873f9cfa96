"""Signer-certificate validation: is this certificate a valid signer at this time, for
this purpose, under one of the CAs a tender accepts?

It owns the translation from pyhanko-certvalidator's verdicts to ``CaBridgeError``s with
stable codes and to an immutable ``SignerValidation`` describing what was established.
certvalidator itself never fetches (``allow_fetching=False``): revocation data comes from
the trust store and, when a ``RevocationSource`` is passed, from the certificates' CRL
distribution points and OCSP responders through it (revocation.py, ADR 0009). It never
uses a system trust list and never treats an empty list of accepted CAs as "accept all".

With a ``RevocationSource`` a validation runs twice: first without revocation (path,
validity, signatures, name constraints, policies; a bad certificate costs no network),
then, on the path found, with the CRLs / OCSP responses collected for it.

pyhanko-certvalidator 0.33 only offers ``async`` path validation; ``validate_signer`` is
synchronous (its callers are gRPC worker threads), so it runs one ``asyncio.run`` per
call, in a helper thread when the calling thread already runs an event loop.

Error messages and context never name the subject: before the opening, who bid is
confidential. certvalidator's own message (which does) stays only in ``__cause__``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.path import ValidationPath

from ca_bridge import errors
from ca_bridge.identity import BidderIdentity
from ca_bridge.revocation import (
    FETCHED_CLOCK_TOLERANCE,
    STORED,
    RevocationEvidence,
    RevocationSource,
)
from ca_bridge.trust_store import CaMaterial, TrustStore, parse_certificate, parse_crl

RevocationMode = Literal["require", "soft-fail"]

SIGNING_KEY_USAGES: frozenset[str] = frozenset({"digital_signature", "non_repudiation"})

_T = TypeVar("_T")

DEFAULT_CLOCK_TOLERANCE = timedelta(seconds=1)
"""certvalidator's own default, used when only stored CRLs are consulted."""


@dataclass(frozen=True)
class SignerPolicy:
    """What a signer certificate must be good for.

    ``key_usage`` is *any-of* (ADR 0006): the certificate's keyUsage extension must be
    present and assert at least one of these bits. A bid signature is a commitment, so
    nonRepudiation (contentCommitment) is the natural bit, but many CAs issue signing
    certificates with digitalSignature only, or both; either states that the key is for
    signatures, which is the property the service relies on. Encryption-only keys
    (keyEncipherment) are refused. ``extended_key_usage`` (dotted OIDs) is also any-of;
    None means not checked. ``revocation``: "require" (every non-anchor certificate on
    the path needs current revocation information: a CRL or OCSP response) or
    "soft-fail" (check what can be had; none becomes a warning; a stored CRL that is
    stale is still an error). ``certificate_policies`` (dotted OIDs, any-of): the path's
    valid policy set (RFC 5280 6.1, computed by certvalidator, so mappings and
    anyPolicy in CA certificates count) must contain one of them, else SIGNER_POLICY;
    None means not checked.
    """

    key_usage: frozenset[str] = SIGNING_KEY_USAGES
    extended_key_usage: frozenset[str] | None = None
    revocation: RevocationMode = "require"
    certificate_policies: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.key_usage:
            raise errors.SignerPolicy("a signer policy must name at least one key usage")
        if not self.key_usage <= SIGNING_KEY_USAGES:
            raise errors.SignerPolicy(
                "a signer policy may only require digital_signature or non_repudiation",
                key_usage=sorted(self.key_usage),
            )
        if self.extended_key_usage is not None and not self.extended_key_usage:
            raise errors.SignerPolicy("extended_key_usage must be None or non-empty")
        if self.revocation not in ("require", "soft-fail"):
            raise errors.SignerPolicy(f"unknown revocation mode {self.revocation!r}")
        if self.certificate_policies is not None and not self.certificate_policies:
            raise errors.SignerPolicy("certificate_policies must be None or non-empty")


@dataclass(frozen=True)
class SignerValidation:
    """What was established about a signer, and on which evidence."""

    identity: BidderIdentity
    ca_id: str
    chain: tuple[str, ...]
    """SHA-256 hex of each certificate, leaf first, trust anchor last."""
    validated_at: datetime
    checks: tuple[str, ...]
    revocation_evidence: tuple[bytes, ...]
    """DER of every CRL and OCSP response used for the non-anchor certificates on the
    path (what the service stores with the bid; ``revalidate_offline`` takes it back)."""
    warnings: tuple[str, ...] = field(default=())
    revocation_records: tuple[RevocationEvidence, ...] = field(default=())
    """The same evidence, described: kind, source URL or "trust-store", validity."""


def validate_signer(
    cert_der: bytes,
    other_certs_der: Sequence[bytes],
    at: datetime,
    trust: TrustStore,
    accepted_ca_ids: Collection[str],
    policy: SignerPolicy,
    *,
    revocation: RevocationSource | None = None,
) -> SignerValidation:
    """Validate ``cert_der`` as a signer at ``at`` under one of ``accepted_ca_ids``.

    ``other_certs_der`` are untrusted helpers for path building (e.g. the CMS
    ``certificates`` field). ``revocation``: where to fetch CRLs / OCSP responses from
    (None: only the trust store's CRLs, no network). Raises a ``CaBridgeError``
    subclass; returns a ``SignerValidation`` on success.
    """
    if revocation is None:
        return _validate(
            cert_der,
            other_certs_der,
            at,
            trust,
            accepted_ca_ids,
            policy,
            source=None,
            evidence=None,
            tolerance=DEFAULT_CLOCK_TOLERANCE,
        )
    return _validate(
        cert_der,
        other_certs_der,
        at,
        trust,
        accepted_ca_ids,
        policy,
        source=revocation,
        evidence=None,
        tolerance=revocation.config.clock_tolerance,
    )


def revalidate_offline(
    cert_der: bytes,
    other_certs_der: Sequence[bytes],
    at: datetime,
    trust: TrustStore,
    accepted_ca_ids: Collection[str],
    policy: SignerPolicy,
    evidence: Sequence[bytes | RevocationEvidence],
    *,
    clock_tolerance: timedelta = FETCHED_CLOCK_TOLERANCE,
) -> SignerValidation:
    """Re-check a stored decision without any network: the same question as
    ``validate_signer`` at the original time ``at``, answered with only the stored
    ``evidence`` (``SignerValidation.revocation_evidence``) as revocation information.

    The trust store's own CRLs are NOT consulted: a CRL published after the decision
    must not change it (a certificate revoked after an honest submission does not void
    the bid); a revocation dated before ``at`` is in the evidence if it was known then.
    ``trust`` must still hold the CA's anchors (keep removed CAs' material for this).
    """
    records = [
        e if isinstance(e, RevocationEvidence) else RevocationEvidence.from_der(e) for e in evidence
    ]
    return _validate(
        cert_der,
        other_certs_der,
        at,
        trust,
        accepted_ca_ids,
        policy,
        source=None,
        evidence=records,
        tolerance=clock_tolerance,
    )


def _validate(
    cert_der: bytes,
    other_certs_der: Sequence[bytes],
    at: datetime,
    trust: TrustStore,
    accepted_ca_ids: Collection[str],
    policy: SignerPolicy,
    *,
    source: RevocationSource | None,
    evidence: list[RevocationEvidence] | None,
    tolerance: timedelta,
) -> SignerValidation:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("validation time must be timezone-aware")
    if not accepted_ca_ids:
        raise errors.SignerPolicy(
            "no certificate authority is accepted for this tender; the tender's "
            "accepted CA list must not be empty"
        )
    warnings: list[str] = []
    known = [ca_id for ca_id in sorted(set(accepted_ca_ids)) if ca_id in trust.cas]
    for ca_id in sorted(set(accepted_ca_ids) - set(known)):
        warnings.append(f"accepted CA {ca_id!r} is not in the trust store and was skipped")
    if not known:
        raise errors.SignerPolicy(
            "none of the tender's accepted certificate authorities is in the trust store; "
            "the operator must add its trust material",
            accepted_ca_ids=sorted(accepted_ca_ids),
        )
    leaf = parse_certificate(cert_der)
    helpers = [parse_certificate(der) for der in other_certs_der]

    failures: list[errors.CaBridgeError] = []
    for ca_id in known:
        material = trust.cas[ca_id]
        if evidence is not None:
            records = list(evidence)
            inputs = _Revinfo.of(records)
        elif source is None:
            records = [RevocationEvidence.from_der(der) for der in material.crls]
            inputs = _Revinfo(crls=list(material.crls), ocsps=[])
        else:
            records = []
            inputs = _Revinfo(crls=[], ocsps=[])
        try:
            if source is not None:
                # Pass 1: everything but revocation, to find the path (and refuse a bad
                # certificate before any network request).
                found, _ = _validate_path(
                    leaf, helpers, material, at, "soft-fail", _Revinfo([], []), tolerance
                )
                _check_usage(leaf, policy)
                _check_policies(found, policy)
                certs = list(found.iter_certs(include_root=True))
                collected = source.collect(certs, at, material.crls)
                records = list(collected.evidence)
                inputs = _Revinfo.of(records)
                warnings.extend(_unavailable(p, policy) for p in collected.problems)
            path, soft_failures = _validate_path(
                leaf, helpers, material, at, policy.revocation, inputs, tolerance
            )
        except errors.RevocationUnavailable as exc:
            if source is not None:
                source.forget([r for r in records if r.source != STORED])
                problems = [w for w in warnings if w.startswith("no revocation information")]
                exc.context["problems"] = problems
            failures.append(exc)
            continue
        except errors.CaBridgeError as exc:
            failures.append(exc)
            continue
        _check_usage(leaf, policy)
        _check_policies(path, policy)
        return _describe(
            cert_der,
            ca_id,
            path,
            records,
            at,
            policy,
            warnings,
            soft_failures,
            legacy=source is None and evidence is None,
        )
    # Prefer the verdict of a CA that actually issued the certificate (expired, revoked,
    # ...) over "no path", which every other accepted CA reports.
    for failure in failures:
        if not isinstance(failure, errors.SignerUntrusted) or failure.context.get("chained"):
            raise failure
    raise failures[0]


@dataclass(frozen=True)
class _Revinfo:
    crls: list[bytes]
    ocsps: list[bytes]

    @classmethod
    def of(cls, records: Sequence[RevocationEvidence]) -> _Revinfo:
        return cls(
            crls=[r.der for r in records if r.kind != "ocsp"],
            ocsps=[r.der for r in records if r.kind == "ocsp"],
        )


def _unavailable(problem: str, policy: SignerPolicy) -> str:
    suffix = "; accepted under soft-fail revocation" if policy.revocation == "soft-fail" else ""
    return f"no revocation information for {problem}{suffix}"


def _check_policies(path: ValidationPath, policy: SignerPolicy) -> None:
    if policy.certificate_policies is None:
        return
    qualified = path.qualified_policies() or frozenset()
    held = {q.user_domain_policy_id for q in qualified}
    if not held & policy.certificate_policies:
        raise errors.SignerPolicy(
            "the certificate was not issued under a certificate policy this tender "
            "requires; ask your CA for a certificate under one of them",
            required=sorted(policy.certificate_policies),
            held=sorted(held),
        )


def _validate_path(
    leaf: asn1_x509.Certificate,
    helpers: list[asn1_x509.Certificate],
    material: CaMaterial,
    at: datetime,
    mode: RevocationMode,
    revinfo: _Revinfo,
    tolerance: timedelta,
) -> tuple[ValidationPath, list[str]]:
    context = ValidationContext(
        trust_roots=[parse_certificate(der) for der in material.anchors],
        other_certs=[*(parse_certificate(d) for d in material.intermediates), *helpers],
        crls=list(revinfo.crls),
        ocsps=list(revinfo.ocsps),
        moment=at,
        allow_fetching=False,
        revocation_mode=mode,
        time_tolerance=tolerance,
    )
    validator = CertificateValidator(leaf, validation_context=context)
    try:
        path = _run(validator.async_validate_path)
    except cv_errors.RevokedError as exc:
        raise errors.SignerRevoked(
            f"{_whose(exc)} was revoked on {exc.revocation_dt:%Y-%m-%d %H:%M:%S}Z "
            f"({exc.reason.human_friendly}); obtain a new certificate from your CA",
            revoked_at=exc.revocation_dt,
            reason=exc.reason.native,
            end_entity=exc.is_ee_cert,
        ) from exc
    except cv_errors.ExpiredError as exc:
        raise errors.SignerExpired(
            f"{_whose(exc)} expired on {exc.expired_dt:%Y-%m-%d %H:%M:%S}Z; "
            "renew your certificate with your CA and sign again",
            expired_at=exc.expired_dt,
            end_entity=exc.is_ee_cert,
        ) from exc
    except cv_errors.NotYetValidError as exc:
        raise errors.SignerNotYetValid(
            f"{_whose(exc)} is not valid before {exc.valid_from:%Y-%m-%d %H:%M:%S}Z; "
            "sign with a certificate that is valid now, or check your computer's clock",
            valid_from=exc.valid_from,
            end_entity=exc.is_ee_cert,
        ) from exc
    except cv_errors.InsufficientRevinfoError as exc:
        # Includes StaleRevinfoError: the store's CRL is missing or out of date. That is
        # the platform's problem, not the bidder's: retry later.
        raise errors.RevocationUnavailable(
            "the revocation status of the signer's certificate chain could not be "
            "established (no current CRL); try again later, and if it persists tell the "
            "platform operator",
            cause=type(exc).__name__,
        ) from exc
    except cv_errors.DisallowedAlgorithmError as exc:
        raise errors.SignerPolicy(
            "the certificate chain uses an algorithm that is no longer accepted; "
            "obtain a new certificate from your CA",
            cause=type(exc).__name__,
        ) from exc
    except cv_errors.PathValidationError as exc:
        raise errors.SignerUntrusted(
            "the certificate chain does not validate (bad signature or CA constraints); "
            "sign with a certificate issued by a CA this tender accepts",
            cause=type(exc).__name__,
            chained=True,
        ) from exc
    except (cv_errors.PathBuildingError, cv_errors.ValidationError) as exc:
        raise errors.SignerUntrusted(
            "the certificate was not issued by a CA this tender accepts; sign with a "
            "certificate from one of the tender's accepted CAs, and include its "
            "intermediate CA certificates",
            cause=type(exc).__name__,
        ) from exc
    soft = [str(e) for e in context.soft_fail_exceptions]
    return path, soft


def _whose(exc: cv_errors.PathValidationError) -> str:
    return "your certificate" if exc.is_ee_cert else "a CA certificate in your chain"


def _check_usage(leaf: asn1_x509.Certificate, policy: SignerPolicy) -> None:
    basic = leaf.basic_constraints_value
    if basic is not None and basic["ca"].native:
        raise errors.SignerKeyUsage(
            "a CA certificate cannot sign bids; sign with your own (end-entity) certificate"
        )
    usage = leaf.key_usage_value
    # Absent keyUsage means "any use" in RFC 5280; for bid signatures we want the CA to
    # have said so explicitly.
    asserted: set[str] = set(usage.native) if usage is not None else set()
    if not asserted & policy.key_usage:
        raise errors.SignerKeyUsage(
            "this certificate is not issued for signing (its key usage lacks "
            f"{' or '.join(sorted(policy.key_usage))}); use your signing certificate, "
            "not an encryption certificate",
            key_usage=sorted(asserted),
        )
    if policy.extended_key_usage is not None:
        eku = leaf.extended_key_usage_value
        purposes = {p.dotted for p in eku} if eku is not None else set()
        if not purposes & policy.extended_key_usage:
            raise errors.SignerKeyUsage(
                "this certificate lacks an extended key usage this tender requires; "
                "ask your CA for a signing certificate with that purpose",
                required=sorted(policy.extended_key_usage),
            )


def _describe(
    cert_der: bytes,
    ca_id: str,
    path: ValidationPath,
    records: list[RevocationEvidence],
    at: datetime,
    policy: SignerPolicy,
    warnings: list[str],
    soft_failures: list[str],
    *,
    legacy: bool,
) -> SignerValidation:
    certs = list(path.iter_certs(include_root=True))
    chain = tuple(hashlib.sha256(c.dump()).hexdigest() for c in reversed(certs))
    # Every certificate but the anchor was checked for revocation (anchors never are).
    checked = certs[1:]
    used: list[RevocationEvidence] = []
    for cert in checked:
        if legacy:
            covering = [r for r in records if _covers(r, cert, at)]
            if not covering:
                warnings.append(
                    f"no CRL in the trust store for {cert.subject.human_friendly!r}; "
                    "accepted under soft-fail revocation"
                )
        else:
            # What collect() gathered for this certificate; a gap is already a warning.
            covering = [r for r in records if r.covers(cert)]
        used.extend(r for r in covering if r not in used)
    warnings.extend(f"revocation soft-fail: {s}" for s in soft_failures)
    crls = sum(1 for r in used if r.kind != "ocsp")
    ocsps = len(used) - crls
    checks = [
        f"path:{len(certs)} certificates to a trust anchor of {ca_id}",
        f"validity:{at.isoformat()}",
        f"revocation:{policy.revocation}:{crls} CRLs"
        + (f", {ocsps} OCSP responses" if ocsps else ""),
        f"key_usage:any-of {','.join(sorted(policy.key_usage))}",
    ]
    if policy.extended_key_usage is not None:
        checks.append(f"extended_key_usage:any-of {','.join(sorted(policy.extended_key_usage))}")
    if policy.certificate_policies is not None:
        checks.append(
            f"certificate_policies:any-of {','.join(sorted(policy.certificate_policies))}"
        )
    return SignerValidation(
        identity=BidderIdentity.from_certificate(cert_der),
        ca_id=ca_id,
        chain=chain,
        validated_at=at,
        checks=tuple(checks),
        revocation_evidence=tuple(r.der for r in used),
        warnings=tuple(warnings),
        revocation_records=tuple(used),
    )


def _covers(record: RevocationEvidence, cert: asn1_x509.Certificate, at: datetime) -> bool:
    """Whether the CRL is (by name) the issuer's, and current at ``at``."""
    crl = parse_crl(record.der)
    tbs = crl["tbs_cert_list"]
    if tbs["issuer"] != cert.issuer:
        return False
    this_update: datetime = tbs["this_update"].native
    next_update: datetime | None = tbs["next_update"].native
    return this_update <= at and (next_update is None or at <= next_update)


def _run(factory: Callable[[], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from inside an event loop: asyncio.run would refuse; use a private thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()
