"""The errors of trust-store *changes* (adding, approving, removing trust material).

Kept apart from ``ca_bridge.errors`` (signer validation) so the two evolve separately;
both share ``CaBridgeError``, so codes stay unique across the package and the service's
status table maps these too. Every refusal of a change is a ``TrustChangeRefused``: a
caller that only needs "the change was not made" catches that; a sync job or an
operator tool branches on ``code``. ``TrustDatabaseUnavailable`` is the one "could not
tell, retry" error; all others are final for the material given.
"""

from __future__ import annotations

from ca_bridge.errors import CaBridgeError


class TrustChangeRefused(CaBridgeError):
    """A change to the trust store was refused (see ``context`` for what and why)."""

    code = "TRUST_CHANGE_REFUSED"
    grpc_status = "FAILED_PRECONDITION"


class AnchorApprovalSameOperator(TrustChangeRefused):
    """An anchor was approved by the operator who proposed it: a second operator must."""

    code = "ANCHOR_APPROVAL_SAME_OPERATOR"
    grpc_status = "PERMISSION_DENIED"


class CrlNotNewer(TrustChangeRefused):
    """The CRL is not newer (CRL number, thisUpdate) than the one already held."""

    code = "CRL_NOT_NEWER"
    grpc_status = "FAILED_PRECONDITION"


class CrlSignatureInvalid(TrustChangeRefused):
    """No active certificate of the CA named as issuer verifies the CRL's signature."""

    code = "CRL_SIGNATURE_INVALID"
    grpc_status = "INVALID_ARGUMENT"


class IntermediateUnchained(TrustChangeRefused):
    """The certificate is not signed by an active anchor or intermediate of the same CA."""

    code = "INTERMEDIATE_UNCHAINED"
    grpc_status = "FAILED_PRECONDITION"


class CaNotFound(TrustChangeRefused):
    """No active CA with this id is in the trust store."""

    code = "CA_NOT_FOUND"
    grpc_status = "NOT_FOUND"


class TrustCertificateNotFound(TrustChangeRefused):
    """No (pending or active) certificate with this SHA-256 is in the trust store."""

    code = "TRUST_CERTIFICATE_NOT_FOUND"
    grpc_status = "NOT_FOUND"


class TrustDatabaseUnavailable(CaBridgeError):
    """The trust-store database could not complete the transaction; retry later."""

    code = "TRUST_DATABASE_UNAVAILABLE"
    grpc_status = "UNAVAILABLE"
