"""Prices compiled into exact integers, so that pricing a call is a few int products.

A cost is kept in units of 1e-10 USD, the scale of every cost column: ``tokens x rate``
(USD per 1M tokens) is ``tokens x rate x 10**4`` units. A rate with at most 4 decimal
places is an integer multiplier; one with more (``0.075123456``) is a fraction
``numerator / divisor`` (``divisor`` a power of ten), and the product is rounded half to
even, as ``Decimal.quantize(Decimal("1e-10"))`` rounds under the default context. The
result is the amount the Decimal arithmetic gives (``record/pricing.py`` has it as the
fallback, ``tests/record/test_pricing_exact.py`` checks one against the other), for every
rate below ``MAX_EXACT_RATE`` with at most ``MAX_RATE_DIGITS`` significant digits and every
count up to ``MAX_SANE_TOKENS``: within those bounds every intermediate Decimal of the old
path has at most 28 digits, so it was exact too, and only the final quantize rounded.
"""

from __future__ import annotations

from decimal import Decimal

# Rates outside these bounds (nobody's list price; a typo in a user's file) are priced by
# the Decimal path, which is exact or fails exactly as it always did.
MAX_EXACT_RATE = Decimal(10) ** 9
MAX_RATE_DIGITS = 18
UNITS_PER_USD = 10**10
_RATE_SCALE = 4  # units per (token x USD per 1M tokens): 10**10 / 10**6

# Amounts are divided and summed with Decimal's operators, under the thread's context as
# the Decimal path was (a context's own methods cost three times as much per call): with
# the default precision of 28 digits every operation here is exact.
_USD_UNIT = Decimal(UNITS_PER_USD)
ZERO = Decimal(0)


class CompiledRates:
    """The six bucket rates of one price (fallbacks applied), as ``numerator / divisor``
    units per token: input, cache read, cache write 5m, cache write 1h, output, reasoning."""

    __slots__ = ("cache_read", "divisor", "input", "output", "reasoning", "write_1h", "write_5m")

    def __init__(self, numerators: tuple[int, ...], divisor: int) -> None:
        (
            self.input,
            self.cache_read,
            self.write_5m,
            self.write_1h,
            self.output,
            self.reasoning,
        ) = numerators
        self.divisor = divisor


def compile_rates(effective: tuple[Decimal, ...]) -> CompiledRates | None:
    """The rates (``Rates.effective()`` order) as integers over one power of ten, or None
    when one is outside the bounds where the integer path is exactly the Decimal one."""
    scaled: list[tuple[int, int]] = []  # rate = integer / 10**places
    for rate in effective:
        if not rate.is_finite() or rate.is_signed() or rate >= MAX_EXACT_RATE:
            return None
        _, digits, exponent = rate.as_tuple()
        if len(digits) > MAX_RATE_DIGITS or not isinstance(exponent, int):
            return None
        places = max(0, -exponent)
        scaled.append((int(rate.scaleb(places)), places))
    scale = max(_RATE_SCALE, *(places for _, places in scaled))
    numerators = tuple(value * 10 ** (scale - places) for value, places in scaled)
    return CompiledRates(numerators, 10 ** (scale - _RATE_SCALE))


def _rounded(numerator: int, divisor: int) -> int:
    """numerator / divisor to the nearest integer, ties to even (numerator >= 0)."""
    quotient, remainder = divmod(numerator, divisor)
    twice = 2 * remainder
    if twice > divisor or (twice == divisor and quotient & 1):
        return quotient + 1
    return quotient


def amounts(
    rates: CompiledRates, inp: int, read: int, w5: int, w1: int, out: int, reasoning: int
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
    """(input, cache read, cache write, output, reasoning, total, cache savings) in USD for
    these bucket counts (sane ints), each Decimal exactly as the Decimal path makes it.

    Each bucket is rounded once to 1e-10 USD, as ``_cents`` quantizes it; the two cache
    writes are summed before that rounding, as there. An amount is written as
    ``plain_decimal`` writes it (no trailing zeros, whole dollars without an exponent):
    an exact Decimal division by 10**10 stops at the ideal exponent 0, which is that form.
    The total and the savings are Decimal sums of those amounts, as there, so they keep
    the exponent Decimal addition gives (``0.0015 + 0.0025`` is ``0.0040``)."""
    rate_in = rates.input
    u_in = inp * rate_in
    u_read = read * rates.cache_read
    u_write = w5 * rates.write_5m + w1 * rates.write_1h
    u_out = out * rates.output
    u_reason = reasoning * rates.reasoning
    u_cached = (read + w5 + w1) * rate_in
    divisor = rates.divisor
    if divisor != 1:  # a rate with more than 4 decimal places: round to the unit
        u_in = _rounded(u_in, divisor)
        u_read = _rounded(u_read, divisor)
        u_write = _rounded(u_write, divisor)
        u_out = _rounded(u_out, divisor)
        u_reason = _rounded(u_reason, divisor)
        u_cached = _rounded(u_cached, divisor)
    c_in = Decimal(u_in) / _USD_UNIT if u_in else ZERO
    c_read = Decimal(u_read) / _USD_UNIT if u_read else ZERO
    c_write = Decimal(u_write) / _USD_UNIT if u_write else ZERO
    c_out = Decimal(u_out) / _USD_UNIT if u_out else ZERO
    c_reason = Decimal(u_reason) / _USD_UNIT if u_reason else ZERO
    # Decimal("0") changes neither the value nor (amounts' exponents are <= 0) the
    # exponent of a sum, so the empty buckets (most of them) are left out of it.
    total = ZERO
    for part in (c_in, c_read, c_write, c_out, c_reason):
        if part is not ZERO:
            total = part if total is ZERO else total + part
    savings = Decimal(u_cached) / _USD_UNIT if u_cached else ZERO
    if u_read or u_write:
        savings = savings - c_read - c_write
    return c_in, c_read, c_write, c_out, c_reason, total, savings
