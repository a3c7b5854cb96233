"""Sliding-window counters on fixed windows, as throttling keys them.

A :class:`Window` names the counter of the current fixed window and of the
previous one; their sum, the previous one weighted by how much of it is still
inside the sliding window, approximates a sliding window (Cloudflare's and
``limits``' approach). A burst across a boundary gets at most one attempt
more than the limit. A leaf: imports nothing of ours.
"""

from __future__ import annotations

import math
import typing as t


class Window(t.NamedTuple):
    """One sliding-window counter at the moment of an attempt.

    A named tuple: a login makes several, and a frozen dataclass costs half
    as much again to make.
    """

    #: The counter's name; each fixed window's key adds its number.
    base: str
    #: The current fixed window's key, and the previous one's.
    key: str
    previous: str
    limit: int
    #: The window length in seconds.
    seconds: int
    #: The share of the previous window still inside the sliding window.
    weight: float
    #: Seconds until the current fixed window ends.
    ends_in: float

    @classmethod
    def at(cls, base: str, limit: int, seconds: int, now: float) -> Window:
        """The window ``base`` (a key prefix) at time ``now``."""
        index, into = divmod(now, seconds)
        return cls(
            base=base,
            key=f"{base}:{int(index)}",
            previous=f"{base}:{int(index) - 1}",
            limit=limit,
            seconds=seconds,
            weight=1 - into / seconds,
            ends_in=seconds - into,
        )

    def estimate(self, current: int, previous: int) -> int:
        """How many the sliding window holds, given both fixed windows (the
        previous one's share rounded down, as ``limits`` does)."""
        return current + math.floor(self.weight * previous)

    @property
    def reservation(self) -> tuple[str, int]:
        """``(key, expiry)``: kept for two windows, to serve as the previous."""
        return self.key, 2 * self.seconds
