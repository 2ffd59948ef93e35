"""Is a 32-byte string an Ed25519 public key that a real key pair could have made?

``cryptography`` loads any 32 bytes that decode to a curve point, including the
identity, the other small-order points and non-canonical encodings (y ≥ p, or x = 0
with the sign bit set). With a small-order public key A, the verification equation
``[S]B = R + [k]A`` loses its ``[k]A`` term, so one forged signature matches every
manifest: such a key must never be trusted or shown as a valid signer. A key made by
Ed25519 key generation is ``[s]B`` for the prime-order base point B, so it lies in the
prime-order subgroup; :func:`public_key_problem` accepts exactly those points, in
their canonical encoding (RFC 8032 §5.1.3 decoding, then ``[ℓ]A = O``).

Pure Python on big integers: about 2 ms per key, done once per key read.
"""

from __future__ import annotations

from functools import lru_cache

_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_L = 2**252 + 27742317777372353535851937790883648493  # order of the base point

_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
_IDENTITY: _Point = (0, 1, 1, 0)


def _add(p: _Point, q: _Point) -> _Point:
    # RFC 8032 §5.1.4, valid for doubling too.
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(k: int, p: _Point) -> _Point:
    out = _IDENTITY
    while k:
        if k & 1:
            out = _add(out, p)
        p = _add(p, p)
        k >>= 1
    return out


def _is_identity(p: _Point) -> bool:
    x, y, z, _ = p
    return x % _P == 0 and (y - z) % _P == 0


def _decode(raw: bytes) -> _Point | str:
    """The point ``raw`` encodes, or why it is not a canonical encoding of a curve point."""
    value = int.from_bytes(raw, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= _P:
        return "is not canonically encoded (y is not reduced modulo p)"
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x2 = u * pow(v, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return "is not a point on the Ed25519 curve"
    if x == 0 and sign:
        return "is not canonically encoded (negative zero x)"
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


@lru_cache(maxsize=256)
def public_key_problem(raw: bytes) -> str | None:
    """None for a usable Ed25519 public key, else a clause saying what is wrong with it.

    Refused: a length other than 32, a non-canonical encoding, a point off the curve,
    a point of small order (the 8 torsion points, among them the identity) and a point
    with a torsion component (not in the prime-order subgroup).
    """
    if not isinstance(raw, bytes) or len(raw) != 32:
        return "is not 32 bytes long"
    point = _decode(raw)
    if isinstance(point, str):
        return point
    if _is_identity(_multiply(8, point)):
        return "is a point of small order, which any forged signature would match"
    if not _is_identity(_multiply(_L, point)):
        return "is not in the prime-order subgroup (it has a small-order component)"
    return None


__all__ = ["public_key_problem"]
