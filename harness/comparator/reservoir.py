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
