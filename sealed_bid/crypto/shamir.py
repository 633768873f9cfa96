"""Shamir's secret sharing over GF(2^8), byte by byte: split a secret K-of-N, combine K.

Owns the field arithmetic (the AES field, reduction polynomial x^8+x^4+x^3+x+1 = 0x11B)
and the standard construction, as in HashiCorp Vault's ``shamir`` package: for each secret
byte a polynomial of degree K-1 whose constant term is that byte and whose other K-1
coefficients are uniformly random (from ``secrets``; zero allowed, unlike Vault, which
forces a non-zero leading coefficient and so rules out one secret value per byte for a
holder of K-1 shares); share ``i`` is the polynomial evaluated at x = i for i = 1..N;
combining is Lagrange interpolation at x = 0.

Shares carry no checksum: a wrong share combines silently into a wrong secret, so callers
check shares against stored commitments first (``domain/shares.py``). Multiplication is
one lookup in a full 256x256 table, without branches on secret values, but Python offers
no constant-time guarantee; the secret is a random token PIN used once.

It must never log, print or put in an exception message a secret or a share value.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_THRESHOLD = 2
MAX_SHARES = 255
_POLYNOMIAL = 0x11B
_GENERATOR = 0x03


def _build_tables() -> tuple[bytes, bytes]:
    """The full multiplication table (``a << 8 | b`` -> a*b) and the inverse table."""
    exp = [0] * 255
    log = [0] * 256
    x = 1
    for power in range(255):
        exp[power] = x
        log[x] = power
        doubled = x << 1
        if doubled & 0x100:
            doubled ^= _POLYNOMIAL
        x = doubled ^ x  # x * 3 = x * 2 + x
    if x != 1 or sorted(exp) != list(range(1, 256)):
        raise RuntimeError("0x03 does not generate GF(2^8) under 0x11B")  # pragma: no cover
    mul = bytearray(256 * 256)
    for a in range(1, 256):
        row = a << 8
        log_a = log[a]
        for b in range(1, 256):
            mul[row | b] = exp[(log_a + log[b]) % 255]
    inverse = bytearray(256)
    for a in range(1, 256):
        inverse[a] = exp[(255 - log[a]) % 255]
    return bytes(mul), bytes(inverse)


_MUL, _INVERSE = _build_tables()


def gf_mul(a: int, b: int) -> int:
    """a * b in GF(2^8) (0x11B); both in 0..255."""
    return _MUL[(a << 8) | b]


def gf_inverse(a: int) -> int:
    """The multiplicative inverse of a non-zero ``a`` in GF(2^8)."""
    if not 1 <= a <= 255:
        raise ValueError("only 1..255 have an inverse in GF(2^8)")
    return _INVERSE[a]


@dataclass(frozen=True)
class Share:
    """One point per secret byte, all at x = ``index``."""

    index: int
    """The x coordinate, 1..255."""
    value: bytes = field(repr=False)
    """The polynomials' values at ``index``, one byte per secret byte."""

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise ValueError("a share index is an integer")
        if not 1 <= self.index <= MAX_SHARES:
            raise ValueError(f"a share index is 1..{MAX_SHARES}")
        if not isinstance(self.value, bytes) or not self.value:
            raise ValueError("a share value is non-empty bytes")


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    """Horner's rule; ``coefficients[0]`` is the constant term."""
    y = 0
    for coefficient in reversed(coefficients):
        y = _MUL[(y << 8) | x] ^ coefficient
    return y


def _split_with_coefficients(
    secret: bytes, coefficients: Sequence[bytes], shares: int
) -> list[Share]:
    """Shares 1..``shares`` of ``secret``; ``coefficients[d]`` holds, for each secret byte,
    the coefficient of x^(d+1). The threshold is ``len(coefficients) + 1``."""
    if any(len(c) != len(secret) for c in coefficients):
        raise ValueError("one coefficient per secret byte and degree")
    columns = list(zip(secret, *coefficients, strict=True))
    return [
        Share(x, bytes(_evaluate(column, x) for column in columns)) for x in range(1, shares + 1)
    ]


def split_secret(secret: bytes, threshold: int, shares: int) -> list[Share]:
    """Split ``secret`` into ``shares`` shares (x = 1..shares), any ``threshold`` of which
    recover it and fewer of which say nothing about it. 2 <= threshold <= shares <= 255."""
    if not secret:
        raise ValueError("cannot split an empty secret")
    if not MIN_THRESHOLD <= threshold <= shares <= MAX_SHARES:
        raise ValueError(
            f"need {MIN_THRESHOLD} <= threshold <= shares <= {MAX_SHARES};"
            f" got threshold {threshold} of {shares}"
        )
    coefficients = [secrets.token_bytes(len(secret)) for _ in range(threshold - 1)]
    return _split_with_coefficients(secret, coefficients, shares)


def _lagrange_weights_at_zero(xs: Sequence[int]) -> list[int]:
    """w_i = prod_{j != i} x_j / (x_i - x_j); in characteristic 2, minus is XOR."""
    weights = []
    for i, x_i in enumerate(xs):
        numerator = 1
        denominator = 1
        for j, x_j in enumerate(xs):
            if j != i:
                numerator = gf_mul(numerator, x_j)
                denominator = gf_mul(denominator, x_i ^ x_j)
        weights.append(gf_mul(numerator, gf_inverse(denominator)))
    return weights


def combine_shares(shares: Sequence[Share]) -> bytes:
    """The secret at x = 0 through the given shares (at least 2, distinct indices, equal
    lengths). Given fewer than the threshold, or a wrong share, the result is a wrong
    secret, not an error: check shares before combining."""
    if len(shares) < MIN_THRESHOLD:
        raise ValueError(f"combining needs at least {MIN_THRESHOLD} shares")
    xs = [share.index for share in shares]
    if any(not 1 <= x <= MAX_SHARES for x in xs):
        raise ValueError(f"share indices are 1..{MAX_SHARES}")
    if len(set(xs)) != len(xs):
        raise ValueError("two shares have the same index")
    length = len(shares[0].value)
    if length == 0 or any(len(share.value) != length for share in shares):
        raise ValueError("shares differ in length or are empty")
    weights = _lagrange_weights_at_zero(xs)
    secret = bytearray(length)
    for weight, share in zip(weights, shares, strict=True):
        row = weight << 8
        for position, y in enumerate(share.value):
            secret[position] ^= _MUL[row | y]
    return bytes(secret)
