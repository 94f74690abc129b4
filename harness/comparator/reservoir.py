"""Bounded, deterministic reservoir sample (Algorithm R) of latencies, for later rank tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_CAPACITY = 2_000

Floats = npt.NDArray[np.float64]


def _splitmix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class Reservoir:
    """Uniform sample of everything offered so far.

    The random draw for the t-th value is a hash of (seed, t) rather than a generator's state, so the
    sample depends only on the values offered, not on how they were batched or on restarts.
    """

    __slots__ = ("_values", "capacity", "seed", "seen")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, seed: int = 0) -> None:
        if capacity <= 0:
            raise ValueError("a reservoir needs a positive capacity")
        self.capacity = capacity
        self.seed = seed
        self.seen = 0
        self._values = np.empty(capacity, dtype=np.float64)

    def offer_many(self, values: npt.ArrayLike) -> None:
        batch = np.asarray(values, dtype=np.float64).ravel()
        if batch.size == 0:
            return
        positions = np.arange(self.seen, self.seen + batch.size, dtype=np.uint64)
        self.seen += int(batch.size)
        filling = positions < self.capacity
        self._values[positions[filling].astype(np.int64)] = batch[filling]
        later, later_values = positions[~filling], batch[~filling]
        if later.size == 0:
            return
        salt = np.uint64((self.seed * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF)
        draws = (_splitmix64(later ^ salt) % (later + np.uint64(1))).astype(np.int64)
        keep = draws < self.capacity
        slots, kept = draws[keep], later_values[keep]
        # Algorithm R applies replacements in order, so when a slot is hit twice the later value wins
        reversed_slots = slots[::-1]
        unique_slots, first_in_reversed = np.unique(reversed_slots, return_index=True)
        self._values[unique_slots] = kept[::-1][first_in_reversed]

    def merge(self, other: Reservoir, values: Floats | None = None) -> None:
        """Fold in `other` (its sample, or `values` in its place: the same sample recoded).

        Merge rule: a uniform sample of both streams together. While both fit, every value (this one's
        first). Beyond, each of the `capacity` draws takes from one side with the odds of what it has
        seen and not yet given (without replacement), then a pseudo-random subset of each side's sample.
        The draws hash (seed, both seen counts) only, so reservoirs offered in lockstep stay aligned."""
        theirs = other.sample() if values is None else np.asarray(values, dtype=np.float64)
        total = self.seen + other.seen
        if total <= self.capacity or self.seen == 0:
            merged = np.concatenate([self.sample(), theirs])[: self.capacity]
        else:
            salt = np.uint64((self.seed * 0x2545F4914F6CDD1D ^ self.seen << 20 ^ other.seen) & 0xFFFFFFFFFFFFFFFF)
            draws = _splitmix64(np.arange(self.capacity, dtype=np.uint64) ^ salt).astype(np.float64) / 2.0**64
            mine_left, theirs_left, from_mine = self.seen, other.seen, 0
            for draw in draws.tolist():
                if draw * (mine_left + theirs_left) < mine_left:
                    mine_left, from_mine = mine_left - 1, from_mine + 1
                else:
                    theirs_left -= 1
            merged = np.concatenate([_subset(self.sample(), from_mine, salt),
                                     _subset(theirs, self.capacity - from_mine, ~salt)])
        self._values[: merged.size] = merged
        self.seen = total

    def sample(self) -> Floats:
        return self._values[: min(self.seen, self.capacity)].copy()

    def to_wire(self) -> dict[str, Any]:
        return {"cap": self.capacity, "seed": self.seed, "seen": self.seen, "v": self.sample().astype("<f8").tobytes()}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Reservoir:
        reservoir = cls(int(raw["cap"]), int(raw["seed"]))
        reservoir.seen = int(raw["seen"])
        stored = np.frombuffer(raw["v"], dtype="<f8")
        reservoir._values[: stored.size] = stored
        return reservoir


def _subset(values: Floats, count: int, salt: np.uint64) -> Floats:
    """`count` of `values` chosen by a hash of their positions: a reservoir's slots are not in random order."""
    order = np.argsort(_splitmix64(np.arange(values.size, dtype=np.uint64) ^ salt), kind="stable")
    return values[np.sort(order[:count])]
