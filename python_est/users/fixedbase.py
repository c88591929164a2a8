"""g^x mod N for the SRP groups, with tables made once per group (fixed-base comb).

Every HTTP Basic login recomputes a verifier, g^x mod N, with g and N those of the user's
group and x a 160-bit SHA-1 value (RFC 5054 §2.4). With gmpy2 a general exponentiation costs
about 300 µs on a 2048-bit group; the base never changes, so the powers g^(d·256^i) are made
once per group (20 rows of 256, about 1.3 MB for 2048 bits, 10 ms) and a verifier is then 20
multiplications, about 70 µs. Every row is multiplied in, a zero byte of x too, so the work does
not depend on x; like gmpy2's own `powmod`, the table index does. Without gmpy2 Python integers
gain nothing by this, and tlslite's `powMod` is used as before.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tlslite.utils.cryptomath import powMod

try:
    from gmpy2 import mpz
except ImportError:  # gmpy2 is a dependency, but the bench can run without it (--no-gmpy2)
    mpz = None

_WINDOW = 8
_EXPONENT_BITS = 160  # SHA-1 (RFC 5054 §2.4)
_ROWS = _EXPONENT_BITS // _WINDOW
_MASK = (1 << _WINDOW) - 1

_tables: dict[tuple[int, int], Sequence[Sequence[Any]]] = {}
_lock = threading.Lock()


def fixed_base_pow(g: int, x: int, n: int) -> int:
    """g^x mod N, the same value as `powMod(g, x, n)`."""
    if mpz is None or x < 0 or x.bit_length() > _EXPONENT_BITS:
        return int(powMod(g, x, n))
    table = _table(g, n)
    result = mpz(1)
    modulus = mpz(n)
    for row in table:
        result = result * row[x & _MASK] % modulus
        x >>= _WINDOW
    return int(result)


def _table(g: int, n: int) -> Sequence[Sequence[Any]]:
    table = _tables.get((g, n))
    if table is not None:
        return table
    with _lock:
        table = _tables.get((g, n))
        if table is None:
            assert mpz is not None
            modulus = mpz(n)
            base = mpz(g) % modulus
            rows = []
            for _ in range(_ROWS):
                row = [mpz(1)]
                for _ in range(_MASK):
                    row.append(row[-1] * base % modulus)
                rows.append(tuple(row))
                base = row[-1] * base % modulus  # g^(256^(i+1))
            table = tuple(rows)
            _tables[(g, n)] = table
    return table
