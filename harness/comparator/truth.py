"""Each side scored against the ground truth: every labelled signal counts, declined, failed and missing ones too.

A signal that a side did not cluster falls in one bucket per outcome (a pseudo-cluster), so a side
that declines everything puts every kind in one bucket and scores an ARI of 0, never a good one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.comparator import agreement
from harness.comparator.agreement import SparseCounts, Table, cell_keys, recode, recode_keys
from harness.comparator.reservoir import DEFAULT_CAPACITY, Reservoir

Ints = npt.NDArray[np.int64]

CLUSTERED, UNCLUSTERED, ERROR, MISSING = range(4)  # outcome codes; MISSING: the side never answered
OUTCOME, LABEL, KIND = 0, 1, 3  # positions in a comparator Slot
MISSING_SLOT = (MISSING, -1, -1, -1, -1)  # stands for an absent side's result
# Pseudo-cluster codes, above every real label code (those count up from 0).
BUCKETS = {UNCLUSTERED: (1 << 31) - 1, ERROR: (1 << 31) - 2, MISSING: (1 << 31) - 3}
BUCKET_NAMES = {"unclustered": BUCKETS[UNCLUSTERED], "error": BUCKETS[ERROR], "missing": BUCKETS[MISSING]}
FIRST_BUCKET = min(BUCKETS.values())
MAX_KINDS = 50  # per-kind rows listed in a report, the most frequent kinds first


def buckets(slots: Ints) -> Ints:
    """A side's cluster per signal: its label code when clustered, else its outcome's pseudo-cluster."""
    outcome = slots[:, OUTCOME]
    pseudo = np.select([outcome == UNCLUSTERED, outcome == ERROR], [BUCKETS[UNCLUSTERED], BUCKETS[ERROR]],
                       BUCKETS[MISSING])
    return np.where(outcome == CLUSTERED, slots[:, LABEL], pseudo)


class TruthStats:
    """(true kind, bucket) counts per side over the same signals, and an aligned sample of the triples."""

    def __init__(self, sample_size: int = DEFAULT_CAPACITY, seed: int = 0) -> None:
        self.left = SparseCounts()
        self.right = SparseCounts()
        # Three reservoirs with one seed, offered in lockstep, keep the same positions: aligned triples
        # (kind, legacy bucket, candidate bucket) in bounded memory, for the gate's paired bootstrap.
        self.sample = [Reservoir(sample_size, seed) for _ in range(3)]

    def add(self, left: Ints, right: Ints) -> None:
        """Slots of the same signals on each side, (n, 5); MISSING_SLOT for an absent side."""
        kind = np.where(left[:, KIND] >= 0, left[:, KIND], right[:, KIND])
        labelled = kind >= 0
        if not labelled.any():
            return
        kind = kind[labelled]
        left_buckets, right_buckets = buckets(left[labelled]), buckets(right[labelled])
        self.left.add(cell_keys(kind, left_buckets))
        self.right.add(cell_keys(kind, right_buckets))
        for reservoir, values in zip(self.sample, (kind, left_buckets, right_buckets), strict=True):
            reservoir.offer_many(values)

    def merge(self, other: TruthStats, kinds: Ints, left_labels: Ints, right_labels: Ints) -> None:
        """Add another shard's counts (its codes through the maps given; pseudo-clusters keep theirs) and
        merge the aligned samples by the reservoirs' rule, in lockstep."""
        self.left.add_counts(recode_keys(other.left.keys, kinds, left_labels), other.left.counts)
        self.right.add_counts(recode_keys(other.right.keys, kinds, right_labels), other.right.counts)
        for mine, theirs, codes in zip(self.sample, other.sample, (kinds, left_labels, right_labels), strict=True):
            mine.merge(theirs, recode(theirs.sample().astype(np.int64), codes).astype(np.float64))

    def section(self, kinds: Sequence[str], left_names: Sequence[str], right_names: Sequence[str], *,
                control: bool = True) -> dict[str, Any] | None:
        """The report's agreement.truth; `control=False` when only the candidate ran (the legacy side is null)."""
        if len(self.right) == 0:
            return None
        # in name order, so that equal kinds and clusters are listed alike however the signals arrived
        left, kinds_sorted, left_names = Table.from_keys(self.left.keys, self.left.counts).canonical(kinds, left_names)
        right, _, right_names = Table.from_keys(self.right.keys, self.right.counts).canonical(kinds, right_names)
        kinds = kinds_sorted
        kind_codes, kind_sums = right.margins[0], right.margins[1]
        listed = kind_codes[np.argsort(-kind_sums, kind="stable")[:MAX_KINDS]]
        per_kind: dict[str, dict[str, Any]] = {
            kinds[int(code)]: {"signals": int(kind_sums[kind_codes == code][0])} for code in listed}
        section: dict[str, Any] = {"pairs": right.n, "kinds": int(kind_codes.size)}
        for side, table, names in (("legacy", left, left_names), ("candidate", right, right_names)):
            scored = control or side == "candidate"
            section[f"{side}_ari"] = agreement.ari(table) if scored else None
            section[f"{side}_nmi"] = agreement.nmi(table) if scored else None
            section[f"{side}_clusters"] = _real_clusters(table) if scored else None
            section[f"{side}_outcomes"] = _outcomes(table) if scored else None
            for code in listed.tolist():
                per_kind[kinds[code]][side] = _kind_scores(table, names, code) if scored else None
        section["per_kind"] = per_kind
        kind_sample, left_sample, right_sample = (r.sample().astype(np.int64).tolist() for r in self.sample)
        section["sample"] = {"seen": self.sample[0].seen, "kind": kind_sample,
                             "legacy": left_sample if control else None, "candidate": right_sample}
        return section

    def to_wire(self) -> dict[str, Any]:
        return {"l": self.left.to_wire(), "r": self.right.to_wire(), "s": [r.to_wire() for r in self.sample]}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> TruthStats:
        stats = cls()
        stats.left, stats.right = SparseCounts.from_wire(raw["l"]), SparseCounts.from_wire(raw["r"])
        stats.sample = [Reservoir.from_wire(r) for r in raw["s"]]
        return stats


def _real_clusters(table: Table) -> int:
    return int(np.unique(table.cols[table.cols < FIRST_BUCKET]).size)


def _outcomes(table: Table) -> dict[str, int]:
    real = table.cols < FIRST_BUCKET
    counts = {"clustered": int(table.counts[real].sum())}
    for name, code in BUCKET_NAMES.items():
        counts[name] = int(table.counts[table.cols == code].sum())
    return counts


def _kind_scores(table: Table, names: Sequence[str], kind: int) -> dict[str, Any]:
    """The kind's dominant real cluster: recall = its share of the kind, purity = the kind's share of it.

    Pseudo-clusters never dominate (declining a whole kind is not recalling it), but they count in the
    kind's total, so declined and failed signals lower the recall.
    """
    in_kind = table.rows == kind
    total = int(table.counts[in_kind].sum())
    real = in_kind & (table.cols < FIRST_BUCKET)
    scores: dict[str, Any] = {"cluster": None, "recall": 0.0, "purity": None}
    if real.any():
        best = np.flatnonzero(real)[int(np.argmax(table.counts[real]))]
        cluster, count = int(table.cols[best]), int(table.counts[best])
        size = int(table.counts[table.cols == cluster].sum())
        scores = {"cluster": str(names[cluster]), "recall": count / total, "purity": count / size}
    for name, code in BUCKET_NAMES.items():
        scores[name] = int(table.counts[in_kind & (table.cols == code)].sum())
    return scores
