"""What a PKCS#11 token can really do for Sealed Bid, found by asking and by trial.

Owns the list of mechanisms the service needs and the OAEP trial: tokens list
mechanisms they then refuse with some parameters (SoftHSM 2.6.1 lists RSA-OAEP but
decrypts only with SHA-1), so the OAEP hashes offered to bidders come from a real
round trip, never from the mechanism list. Probing never touches a stored key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealed_bid.errors import TokenUnsupported
from sealed_bid.hsm.token import OAEP_HASHES, RSA_BITS, Token

REQUIRED_MECHANISMS: tuple[str, ...] = (
    "RSA_PKCS_KEY_PAIR_GEN",
    "RSA_PKCS_OAEP",
    "SHA256_RSA_PKCS",
    "SHA256_HMAC",
    "GENERIC_SECRET_KEY_GEN",
)
"""Tender and platform key generation, key transport, receipts, bidder tags."""


@dataclass(frozen=True)
class TokenProfile:
    module_path: str
    library_manufacturer: str
    library_description: str
    library_version: tuple[int, int]
    token_label: str
    token_manufacturer: str
    token_model: str
    firmware_version: tuple[int, int]
    hardware_version: tuple[int, int]
    mechanisms: frozenset[str]
    """Those of ``REQUIRED_MECHANISMS`` the token lists."""
    rsa_keygen_bits: tuple[int, int] | None
    """(min, max) RSA modulus bits the token generates; None if it lists no RSA keygen."""
    oaep_hashes: tuple[str, ...]
    """OAEP hashes (MGF1 with the same hash) that round-tripped, weakest name first."""

    @property
    def missing_mechanisms(self) -> tuple[str, ...]:
        return tuple(m for m in REQUIRED_MECHANISMS if m not in self.mechanisms)

    @property
    def supports_rsa_3072(self) -> bool:
        if self.rsa_keygen_bits is None:
            return False
        low, high = self.rsa_keygen_bits
        return low <= RSA_BITS <= high


def probe(token: Token) -> TokenProfile:
    """Ask the token what it is and what it lists, and try RSA-OAEP with each hash."""
    description = token.describe()
    listed = token.mechanisms()
    keygen = listed.get("RSA_PKCS_KEY_PAIR_GEN")
    oaep_hashes: tuple[str, ...] = ()
    if "RSA_PKCS_OAEP" in listed:
        oaep_hashes = token.oaep_round_trips(OAEP_HASHES)
    return TokenProfile(
        module_path=description.module_path,
        library_manufacturer=description.library_manufacturer,
        library_description=description.library_description,
        library_version=description.library_version,
        token_label=description.token_label,
        token_manufacturer=description.token_manufacturer,
        token_model=description.token_model,
        firmware_version=description.firmware_version,
        hardware_version=description.hardware_version,
        mechanisms=frozenset(m for m in REQUIRED_MECHANISMS if m in listed),
        rsa_keygen_bits=keygen,
        oaep_hashes=oaep_hashes,
    )


def require_profile(profile: TokenProfile) -> TokenProfile:
    """Return ``profile`` if the service can run on this token; else raise
    ``TokenUnsupported`` naming everything that is missing."""
    problems: list[str] = []
    if profile.missing_mechanisms:
        problems.append("missing mechanisms " + ", ".join(profile.missing_mechanisms))
    if profile.rsa_keygen_bits is not None and not profile.supports_rsa_3072:
        problems.append(f"RSA key generation limited to {profile.rsa_keygen_bits} bits")
    if not profile.oaep_hashes:
        problems.append("RSA-OAEP decryption did not round-trip with any hash")
    if problems:
        raise TokenUnsupported(
            f"token {profile.token_label!r} ({profile.token_manufacturer} "
            f"{profile.token_model}) cannot serve Sealed Bid: " + "; ".join(problems),
            missing=profile.missing_mechanisms,
        )
    return profile
