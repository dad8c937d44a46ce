"""The rates of one price: USD per 1M tokens for each of the six buckets (``Rates``), and a
long-context tier (``Tier``). Their own module so that ``pricing.py`` (the price table) and
``price_extras.py`` (service tiers, fees, audio) both build on them; ``pricing.py`` re-exports
them, their public home.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens for each bucket; None means "fall back" (see ``for_bucket``)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None

    def effective(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
        """Rates per bucket with fallbacks applied: a missing cache rate is billed as
        plain input (never as free), a missing 1h write as a 5m write, reasoning as output."""
        write_5m = self.cache_write_5m if self.cache_write_5m is not None else self.input
        return (
            self.input,
            self.cache_read if self.cache_read is not None else self.input,
            write_5m,
            self.cache_write_1h if self.cache_write_1h is not None else write_5m,
            self.output,
            self.reasoning if self.reasoning is not None else self.output,
        )


@dataclass(frozen=True, slots=True)
class Tier:
    above_input_tokens: int
    rates: Rates
