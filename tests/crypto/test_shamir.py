"""Shamir over GF(2^8): the AES field's known answers and axioms, recovery from any K
shares, and that K-1 shares leave every secret possible."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealed_bid.crypto.shamir import (
    Share,
    _split_with_coefficients,
    combine_shares,
    gf_inverse,
    gf_mul,
    split_secret,
)

BYTE = st.integers(0, 255)
NONZERO = st.integers(1, 255)


def reference_mul(a: int, b: int) -> int:
    """Schoolbook carry-less multiplication reduced by 0x11B, independent of the tables."""
    product = 0
    for bit in range(8):
        if b >> bit & 1:
            product ^= a << bit
    for bit in range(14, 7, -1):
        if product >> bit & 1:
            product ^= 0x11B << (bit - 8)
    return product


# --- The field -----------------------------------------------------------------------------
def test_fips_197_multiplication_examples() -> None:
    # FIPS-197 section 4.2: {57} . {83} = {c1}; section 4.2.1: {57} . {13} = {fe}.
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE
    assert gf_mul(0x57, 0x02) == 0xAE  # xtime
    assert gf_mul(0x80, 0x02) == 0x1B  # the reduction itself


def test_known_inverses() -> None:
    # {53}^-1 = {ca} (the AES S-box derivation's example); {02}^-1 = {8d}.
    assert gf_inverse(0x53) == 0xCA
    assert gf_inverse(0x02) == 0x8D
    assert gf_inverse(0x01) == 0x01


def test_multiplication_table_matches_schoolbook_product() -> None:
    for a, b in itertools.product(range(256), repeat=2):
        assert gf_mul(a, b) == reference_mul(a, b)


def test_every_nonzero_element_times_its_inverse_is_one() -> None:
    for a in range(1, 256):
        assert gf_mul(a, gf_inverse(a)) == 1


def test_zero_has_no_inverse() -> None:
    with pytest.raises(ValueError):
        gf_inverse(0)


@settings(max_examples=200, deadline=None)
@given(BYTE, BYTE, BYTE)
def test_field_axioms(a: int, b: int, c: int) -> None:
    assert gf_mul(a, b) == gf_mul(b, a)
    assert gf_mul(a, gf_mul(b, c)) == gf_mul(gf_mul(a, b), c)
    assert gf_mul(a, b ^ c) == gf_mul(a, b) ^ gf_mul(a, c)
    assert gf_mul(a, 1) == a
    assert gf_mul(a, 0) == 0


# --- Known answers -------------------------------------------------------------------------
def test_threshold_two_known_answer() -> None:
    # f(x) = 0x57 + 0x83 x: f(1) = 0x57^0x83 = 0xd4; f(2) = 0x57^{1d} = 0x4a
    # ({83}.{02} = 0x106^0x11b = {1d}); f(3) = 0x57^({1d}^{83}) = 0xc9.
    shares = _split_with_coefficients(b"\x57", [b"\x83"], 3)
    assert [(s.index, s.value) for s in shares] == [(1, b"\xd4"), (2, b"\x4a"), (3, b"\xc9")]
    # Shares 1 and 3: weights 3/2 and 1/2, i.e. division by 2 through {8d}.
    assert combine_shares([shares[0], shares[2]]) == b"\x57"
    assert combine_shares([shares[2], shares[1]]) == b"\x57"


def test_threshold_three_known_answer() -> None:
    # f(x) = 0x00 + 0x57 x + 0x01 x^2 at x = 0x13 is {57}.{13} ^ {13}.{13} = {fe} ^ {13}.{13}
    # where {13}.{13} = x^8+x^2+1 reduced = x^4+x^3+x^2+x = {1e}.
    shares = _split_with_coefficients(b"\x00", [b"\x57", b"\x01"], 0x13)
    assert shares[0x12].index == 0x13
    assert shares[0x12].value == bytes([0xFE ^ 0x1E])
    assert combine_shares([shares[0], shares[4], shares[0x12]]) == b"\x00"


# --- Splitting and combining ---------------------------------------------------------------
@st.composite
def split_and_subset(draw: st.DrawFn) -> tuple[bytes, list[Share], list[Share]]:
    secret = draw(st.binary(min_size=1, max_size=64))
    total = draw(st.integers(2, 12))
    threshold = draw(st.integers(2, total))
    shares = split_secret(secret, threshold, total)
    size = draw(st.integers(threshold, total))
    subset = draw(st.permutations(shares))[:size]
    return secret, shares, subset


@settings(max_examples=200, deadline=None)
@given(split_and_subset())
def test_any_threshold_shares_in_any_order_recover_the_secret(
    case: tuple[bytes, list[Share], list[Share]],
) -> None:
    secret, shares, subset = case
    assert [s.index for s in shares] == list(range(1, len(shares) + 1))
    assert all(len(s.value) == len(secret) for s in shares)
    assert combine_shares(subset) == secret


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=8),
    st.integers(2, 6),
    st.data(),
)
def test_fewer_than_threshold_shares_leave_every_secret_possible(
    secret: bytes, threshold: int, data: st.DataObject
) -> None:
    """For K-1 fixed shares and any target secret there is a K-th share (a point of a
    polynomial of degree K-1) that completes them into that secret."""
    total = threshold + 1
    shares = split_secret(secret, threshold, total)
    known = shares[: threshold - 1]
    forged_index = data.draw(st.sampled_from([s.index for s in shares[threshold - 1 :]]))
    target = data.draw(st.binary(min_size=len(secret), max_size=len(secret)))
    # Try every value of the forged share's byte independently; exactly one per position
    # must produce the target byte (the map from the K-th y to the secret is a bijection).
    forged = bytearray(len(secret))
    for position in range(len(secret)):
        hits = [
            y
            for y in range(256)
            if combine_shares([*known, Share(forged_index, bytes([y]) * len(secret))])[position]
            == target[position]
        ]
        assert len(hits) == 1
        forged[position] = hits[0]
    assert combine_shares([*known, Share(forged_index, bytes(forged))]) == target


def test_split_is_randomized() -> None:
    first = split_secret(b"same secret", 2, 3)
    second = split_secret(b"same secret", 2, 3)
    assert [s.value for s in first] != [s.value for s in second]


@pytest.mark.parametrize(
    ("threshold", "total"), [(1, 1), (1, 3), (0, 2), (4, 3), (2, 256), (256, 256)]
)
def test_split_refuses_parameters_outside_2_k_n_255(threshold: int, total: int) -> None:
    with pytest.raises(ValueError):
        split_secret(b"secret", threshold, total)


def test_split_accepts_the_extremes() -> None:
    shares = split_secret(b"\x01\x02", 255, 255)
    assert combine_shares(shares[::-1]) == b"\x01\x02"
    assert combine_shares(split_secret(b"x", 2, 255)[253:]) == b"x"


def test_split_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError):
        split_secret(b"", 2, 3)


def test_combine_refuses_duplicates_lengths_and_too_few() -> None:
    a, b, c = split_secret(b"secret", 2, 3)
    with pytest.raises(ValueError, match="same index"):
        combine_shares([a, b, Share(a.index, c.value)])
    with pytest.raises(ValueError, match="length"):
        combine_shares([a, Share(b.index, b.value + b"\x00")])
    with pytest.raises(ValueError, match="at least 2"):
        combine_shares([a])
    with pytest.raises(ValueError, match="at least 2"):
        combine_shares([])


@pytest.mark.parametrize("index", [0, 256, -1])
def test_share_index_is_1_to_255(index: int) -> None:
    with pytest.raises(ValueError):
        Share(index, b"\x01")


def test_share_repr_hides_the_value() -> None:
    share = Share(7, b"very secret share bytes")
    assert "very secret" not in repr(share)
    assert "7" in repr(share)
