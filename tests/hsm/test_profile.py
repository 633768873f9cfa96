"""What the token can really do, found by trial."""

from __future__ import annotations

from dataclasses import replace

import pkcs11
import pytest

from sealed_bid.errors import TokenUnsupported
from sealed_bid.hsm.profile import REQUIRED_MECHANISMS, TokenProfile, probe, require_profile
from sealed_bid.hsm.token import Token

pytestmark = pytest.mark.token


@pytest.fixture(scope="module")
def profile(token: Token) -> TokenProfile:
    return probe(token)


def test_softhsm_really_decrypts_oaep_only_with_sha1(profile: TokenProfile) -> None:
    # SoftHSM 2.6.1 lists RSA-OAEP but refuses every hash but SHA-1 (FACTS.md).
    assert profile.oaep_hashes == ("sha1",)


def test_profile_describes_the_module_and_token(profile: TokenProfile, token: Token) -> None:
    assert profile.library_manufacturer == "SoftHSM"
    assert profile.token_model.startswith("SoftHSM")
    assert profile.token_label == token.label
    assert profile.module_path == str(token.module_path)


def test_softhsm_has_every_required_mechanism(profile: TokenProfile) -> None:
    assert profile.mechanisms == frozenset(REQUIRED_MECHANISMS)
    assert profile.missing_mechanisms == ()
    assert profile.supports_rsa_3072


def test_softhsm_profile_is_accepted(profile: TokenProfile) -> None:
    assert require_profile(profile) is profile


def test_profile_without_a_working_oaep_hash_is_refused(profile: TokenProfile) -> None:
    with pytest.raises(TokenUnsupported, match="OAEP"):
        require_profile(replace(profile, oaep_hashes=()))


def test_profile_missing_a_mechanism_is_refused(profile: TokenProfile) -> None:
    crippled = replace(profile, mechanisms=profile.mechanisms - {"SHA256_HMAC"})
    with pytest.raises(TokenUnsupported, match="SHA256_HMAC"):
        require_profile(crippled)


def test_profile_without_rsa_3072_is_refused(profile: TokenProfile) -> None:
    with pytest.raises(TokenUnsupported, match="RSA key generation"):
        require_profile(replace(profile, rsa_keygen_bits=(1024, 2048)))


def test_probing_leaves_no_objects_on_the_token(token: Token) -> None:
    session = pkcs11.lib(str(token.module_path)).get_token(token_label=token.label).open()
    try:
        before = len(list(session.get_objects()))
        probe(token)
        # The trial key pair was a session object and is destroyed; nothing remains.
        assert len(list(session.get_objects())) == before
    finally:
        session.close()
