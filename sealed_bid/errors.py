"""The error hierarchy of Sealed Bid, with stable machine codes.

Every refusal the service can give is one subclass here. Each carries a stable ``code``
(what clients branch on; never renamed) and belongs to exactly one gRPC status, kept in
``ErrorKind``. Messages say what was wrong and what to do; they never contain PINs,
plaintext or a bidder's identity before the opening.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class Status(enum.Enum):
    """The gRPC status an error maps to (names match ``grpc.StatusCode``)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    ABORTED = "ABORTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class SealedBidError(Exception):
    """Base of every error Sealed Bid raises on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[Status] = Status.INTERNAL

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --- Tender schedule and lookup -------------------------------------------------------
class InvalidSchedule(SealedBidError):
    """The tender's deadline/opening time violate the schedule rules."""

    code = "INVALID_SCHEDULE"
    status = Status.INVALID_ARGUMENT


class InvalidTender(SealedBidError):
    """A tender field other than the schedule is invalid (size limit, CA list, title)."""

    code = "INVALID_TENDER"
    status = Status.INVALID_ARGUMENT


class TenderNotFound(SealedBidError):
    code = "TENDER_NOT_FOUND"
    status = Status.NOT_FOUND


class TenderExists(SealedBidError):
    code = "TENDER_EXISTS"
    status = Status.ALREADY_EXISTS


# --- Submission: the stream itself ----------------------------------------------------
class MalformedRequest(SealedBidError):
    """The request stream is out of order or a message lacks a required field."""

    code = "MALFORMED_REQUEST"
    status = Status.INVALID_ARGUMENT


class StreamIncomplete(SealedBidError):
    """The stream ended before its trailer; nothing was stored."""

    code = "STREAM_INCOMPLETE"
    status = Status.ABORTED


class BidLate(SealedBidError):
    code = "BID_LATE"
    status = Status.FAILED_PRECONDITION


class EnvelopeTooLarge(SealedBidError):
    code = "ENVELOPE_TOO_LARGE"
    status = Status.RESOURCE_EXHAUSTED


class ChunkTooLarge(SealedBidError):
    code = "CHUNK_TOO_LARGE"
    status = Status.RESOURCE_EXHAUSTED


class SizeMismatch(SealedBidError):
    code = "SIZE_MISMATCH"
    status = Status.INVALID_ARGUMENT


class DigestMismatch(SealedBidError):
    code = "DIGEST_MISMATCH"
    status = Status.INVALID_ARGUMENT


# --- Submission: the envelope ---------------------------------------------------------
class EnvelopeNotDer(SealedBidError):
    """The envelope is not DER (e.g. BER indefinite lengths, trailing bytes)."""

    code = "ENVELOPE_NOT_DER"
    status = Status.INVALID_ARGUMENT


class EnvelopeNotCms(SealedBidError):
    code = "ENVELOPE_NOT_CMS"
    status = Status.INVALID_ARGUMENT


class EnvelopeWrongContentType(SealedBidError):
    code = "ENVELOPE_WRONG_CONTENT_TYPE"
    status = Status.INVALID_ARGUMENT


class RecipientMismatch(SealedBidError):
    """No RecipientInfo addresses this tender's key."""

    code = "RECIPIENT_MISMATCH"
    status = Status.INVALID_ARGUMENT


class AlgorithmRefused(SealedBidError):
    """A content or key-transport algorithm is not one the tender accepts."""

    code = "ALGORITHM_REFUSED"
    status = Status.INVALID_ARGUMENT


# --- Signatures and signers -----------------------------------------------------------
class SignatureMalformed(SealedBidError):
    code = "SIGNATURE_MALFORMED"
    status = Status.INVALID_ARGUMENT


class SignatureInvalid(SealedBidError):
    code = "SIGNATURE_INVALID"
    status = Status.INVALID_ARGUMENT


# Signer-certificate refusals (SIGNER_*, REVOCATION_UNAVAILABLE) are ca_bridge.errors.


class SigningTimeInvalid(SealedBidError):
    """The signature's signingTime is missing or too far from the service's clock."""

    code = "SIGNING_TIME_INVALID"
    status = Status.INVALID_ARGUMENT


# --- Bid lifecycle --------------------------------------------------------------------
class BidReplayed(SealedBidError):
    """An envelope or statement older than the bidder's current one was sent again."""

    code = "BID_REPLAYED"
    status = Status.FAILED_PRECONDITION


class BidNotFound(SealedBidError):
    code = "BID_NOT_FOUND"
    status = Status.NOT_FOUND


class BidWithdrawn(SealedBidError):
    code = "BID_WITHDRAWN"
    status = Status.FAILED_PRECONDITION


class NotBidOwner(SealedBidError):
    """A withdrawal was signed by someone other than the bid's bidder."""

    code = "NOT_BID_OWNER"
    status = Status.PERMISSION_DENIED


class StatementInvalid(SealedBidError):
    """A signed statement (e.g. withdrawal) does not parse or names another tender."""

    code = "STATEMENT_INVALID"
    status = Status.INVALID_ARGUMENT


class ReceiptNotFound(SealedBidError):
    code = "RECEIPT_NOT_FOUND"
    status = Status.NOT_FOUND


class ReceiptInvalid(SealedBidError):
    code = "RECEIPT_INVALID"
    status = Status.INVALID_ARGUMENT


# --- Opening --------------------------------------------------------------------------
class NotYetOpen(SealedBidError):
    """The opening time has not come; no tender key was used."""

    code = "NOT_YET_OPEN"
    status = Status.FAILED_PRECONDITION


class AlreadyOpened(SealedBidError):
    code = "ALREADY_OPENED"
    status = Status.FAILED_PRECONDITION


class OpeningTimeNotProven(SealedBidError):
    """The time-stamping authority's time is before the opening time: the local clock
    is ahead (or was set ahead). No tender key was used."""

    code = "OPENING_TIME_NOT_PROVEN"
    status = Status.FAILED_PRECONDITION


class QuorumNotMet(SealedBidError):
    """Fewer valid shares than the tender's threshold have been presented."""

    code = "QUORUM_NOT_MET"
    status = Status.FAILED_PRECONDITION


class ShareInvalid(SealedBidError):
    """A presented share is malformed, belongs to another tender, or does not combine
    with the others into the key's PIN."""

    code = "SHARE_INVALID"
    status = Status.INVALID_ARGUMENT


class OfficerNotNamed(SealedBidError):
    """The presenting certificate is not one of the tender's opening officers."""

    code = "OFFICER_NOT_NAMED"
    status = Status.PERMISSION_DENIED


class ShareAlreadyPresented(SealedBidError):
    """This person (certificate or subject) has already presented a share."""

    code = "SHARE_ALREADY_PRESENTED"
    status = Status.ALREADY_EXISTS


class ResponseWindowOpen(SealedBidError):
    """The tender key is kept while bidders may still confirm or object."""

    code = "RESPONSE_WINDOW_OPEN"
    status = Status.FAILED_PRECONDITION


class ResponseWindowClosed(SealedBidError):
    """A confirmation or objection outside the tender's response window."""

    code = "RESPONSE_WINDOW_CLOSED"
    status = Status.FAILED_PRECONDITION


class RecordMismatch(SealedBidError):
    """A bidder's response names a record digest that is not the tender's record."""

    code = "RECORD_MISMATCH"
    status = Status.INVALID_ARGUMENT


class NotABidder(SealedBidError):
    """The signer has no bid in this tender (or none that was opened, for a response)."""

    code = "NOT_A_BIDDER"
    status = Status.PERMISSION_DENIED


class BidSealed(SealedBidError):
    """What was asked for is sealed to the tender key until the opening."""

    code = "BID_SEALED"
    status = Status.FAILED_PRECONDITION


class RecordNotFound(SealedBidError):
    code = "RECORD_NOT_FOUND"
    status = Status.NOT_FOUND


# --- Access ---------------------------------------------------------------------------
class OperatorRequired(SealedBidError):
    code = "OPERATOR_REQUIRED"
    status = Status.PERMISSION_DENIED


class CountHidden(SealedBidError):
    """The tender's policy hides the number of bids until the opening."""

    code = "COUNT_HIDDEN"
    status = Status.PERMISSION_DENIED


# --- Infrastructure -------------------------------------------------------------------
class TokenError(SealedBidError):
    """The PKCS#11 token failed or lacks a required capability."""

    code = "TOKEN_ERROR"
    status = Status.UNAVAILABLE


class TimestampUnavailable(SealedBidError):
    """The time-stamping authority did not answer, or refused, in time; retry."""

    code = "TIMESTAMP_UNAVAILABLE"
    status = Status.UNAVAILABLE


class TimestampInvalid(SealedBidError):
    """The time-stamping authority's answer does not verify: bad signature, untrusted
    TSA certificate, wrong message imprint or nonce."""

    code = "TIMESTAMP_INVALID"
    status = Status.UNAVAILABLE


class TokenUnsupported(SealedBidError):
    code = "TOKEN_UNSUPPORTED"
    status = Status.FAILED_PRECONDITION


class ConfigError(SealedBidError):
    code = "CONFIG_ERROR"
    status = Status.FAILED_PRECONDITION


class StorageError(SealedBidError):
    code = "STORAGE_ERROR"
    status = Status.UNAVAILABLE


def all_error_classes() -> list[type[SealedBidError]]:
    """Every concrete error class, for the code table and its uniqueness test."""
    seen: list[type[SealedBidError]] = []
    stack: list[type[SealedBidError]] = [SealedBidError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


# --- Per-bid outcomes at the opening (recorded in the opening record, not sent as RPC
# errors; the codes are the record's stable status values) -------------------------------
class KeyTransportFailed(SealedBidError):
    """The token could not recover the content key (wrong key, bad OAEP padding)."""

    code = "KEY_TRANSPORT_FAILED"
    status = Status.FAILED_PRECONDITION


class DecryptionFailed(SealedBidError):
    """The content did not decrypt or its GCM tag did not verify."""

    code = "DECRYPTION_FAILED"
    status = Status.FAILED_PRECONDITION


class InnerSignatureInvalid(SealedBidError):
    code = "INNER_SIGNATURE_INVALID"
    status = Status.FAILED_PRECONDITION


class SignerMismatch(SealedBidError):
    """The inner (package) signer is not the outer (envelope) signer."""

    code = "SIGNER_MISMATCH"
    status = Status.FAILED_PRECONDITION


class MalformedPackage(SealedBidError):
    """The bid package is not a ZIP with a valid bid.json for this tender."""

    code = "MALFORMED_PACKAGE"
    status = Status.FAILED_PRECONDITION
