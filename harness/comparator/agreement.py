"""Contingency tables built incrementally, and the agreement metrics computed from them.

ARI and NMI reproduce scikit-learn's `adjusted_rand_score` and `normalized_mutual_info_score`
(arithmetic normalisation) special cases included, but from the table alone, never from label lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from math import log
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

Ints = npt.NDArray[np.int64]

CODE_BITS = 32  # a cell key is (row << 32) | column: codes are below 2**31, far beyond any label count
_CODE_MASK = (1 << CODE_BITS) - 1


class SparseCounts:
    """Counts per int64 key, kept in growable arrays; the dict is touched once per distinct key per batch."""

    __slots__ = ("_counts", "_index", "_keys", "_size")

    def __init__(self) -> None:
        self._index: dict[int, int] = {}
        self._keys = np.zeros(64, dtype=np.int64)
        self._counts = np.zeros(64, dtype=np.int64)
        self._size = 0

    @property
    def keys(self) -> Ints:
        return self._keys[: self._size]

    @property
    def counts(self) -> Ints:
        return self._counts[: self._size]

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def __len__(self) -> int:
        return self._size

    def add(self, keys: Ints) -> Ints:
        """Count each key once; returns each key's cell index (stable for the life of the table)."""
        if keys.size == 0:
            return np.empty(0, dtype=np.int64)
        distinct, inverse, per_key = np.unique(keys, return_inverse=True, return_counts=True)
        cells = self._cells(distinct)
        self._counts[cells] += per_key  # `cells` has no repeats, so a plain fancy += is exact
        return cells[inverse]

    def add_counts(self, keys: Ints, counts: Ints) -> Ints:
        """Add `counts[i]` to key `keys[i]` (distinct keys); returns each key's cell index (a merge)."""
        if keys.size == 0:
            return np.empty(0, dtype=np.int64)
        cells = self._cells(keys)
        self._counts[cells] += counts
        return cells

    def _cells(self, distinct: Ints) -> Ints:
        get = self._index.get
        cells = [get(key, -1) for key in distinct.tolist()]
        if -1 in cells:
            for position, key in enumerate(distinct.tolist()):
                if cells[position] == -1:
                    cells[position] = self._new_cell(key)
        return np.asarray(cells, dtype=np.int64)

    def _new_cell(self, key: int) -> int:
        if self._size == self._keys.size:
            self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
            self._counts = np.concatenate([self._counts, np.zeros_like(self._counts)])
        cell = self._size
        self._keys[cell] = key
        self._index[key] = cell
        self._size += 1
        return cell

    def to_wire(self) -> dict[str, bytes]:
        return {"k": self.keys.astype("<i8").tobytes(), "c": self.counts.astype("<i8").tobytes()}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> SparseCounts:
        table = cls()
        keys = np.frombuffer(raw["k"], dtype="<i8").astype(np.int64)
        counts = np.frombuffer(raw["c"], dtype="<i8").astype(np.int64)
        capacity = max(64, 1 << int(keys.size).bit_length())
        table._keys = np.zeros(capacity, dtype=np.int64)
        table._counts = np.zeros(capacity, dtype=np.int64)
        table._keys[: keys.size] = keys
        table._counts[: counts.size] = counts
        table._size = int(keys.size)
        table._index = {key: cell for cell, key in enumerate(keys.tolist())}
        return table


def cell_keys(rows: Ints, cols: Ints) -> Ints:
    return (rows.astype(np.int64) << CODE_BITS) | cols.astype(np.int64)


def recode(codes: Ints, mapping: Ints) -> Ints:
    """Codes through `mapping` (old code -> new code); codes outside it (-1, pseudo-clusters) unchanged."""
    known = (codes >= 0) & (codes < mapping.size)
    return np.where(known, mapping[np.where(known, codes, 0)] if mapping.size else codes, codes)


def recode_keys(keys: Ints, rows: Ints, cols: Ints) -> Ints:
    """Cell keys with their row and column codes each passed through `recode`."""
    return cell_keys(recode(keys >> CODE_BITS, rows), recode(keys & _CODE_MASK, cols))


def name_ranks(names: Sequence[str]) -> tuple[Ints, list[str]]:
    """(code -> rank of its name, the names in rank order): codes renumbered in name order."""
    order = sorted(range(len(names)), key=lambda code: (names[code], code))
    ranks = np.empty(len(names), dtype=np.int64)
    ranks[order] = np.arange(len(names), dtype=np.int64)
    return ranks, [names[code] for code in order]


@dataclass(frozen=True)
class Table:
    """A contingency table in coordinate form: only non-zero cells."""

    rows: Ints
    cols: Ints
    counts: Ints

    @classmethod
    def from_keys(cls, keys: Ints, counts: Ints) -> Table:
        nonzero = counts > 0
        keys = keys[nonzero]
        return cls(keys >> CODE_BITS, keys & _CODE_MASK, counts[nonzero])

    @classmethod
    def from_pairs(cls, rows: Ints, cols: Ints) -> Table:
        keys, counts = np.unique(cell_keys(rows, cols), return_counts=True)
        return cls.from_keys(keys, counts.astype(np.int64))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def canonical(self, row_names: Sequence[str], col_names: Sequence[str]) -> tuple[Table, list[str], list[str]]:
        """The table with its codes renumbered in name order and its cells sorted, with the names in that order.

        Every tie in a report (equal clusters, an optimal matching among equal ones) is then broken by
        name, not by the order labels arrived in: shards merged report what one comparator reports.
        Codes beyond the names (pseudo-clusters) keep their value."""
        row_ranks, rows_sorted = name_ranks(row_names)
        col_ranks, cols_sorted = name_ranks(col_names)
        rows, cols = recode(self.rows, row_ranks), recode(self.cols, col_ranks)
        order = np.lexsort((cols, rows))
        return Table(rows[order], cols[order], self.counts[order]), rows_sorted, cols_sorted

    def without_cell(self, row: int | None, col: int | None) -> Table:
        """The table less one cell: e.g. (default, default), to judge the anomalies alone."""
        if row is None or col is None:
            return self
        keep = ~((self.rows == row) & (self.cols == col))
        return Table(self.rows[keep], self.cols[keep], self.counts[keep])

    @cached_property
    def margins(self) -> tuple[Ints, Ints, Ints, Ints]:
        """(row codes, row sums, column codes, column sums), non-empty ones only, sorted by code."""
        row_codes, row_inverse = np.unique(self.rows, return_inverse=True)
        col_codes, col_inverse = np.unique(self.cols, return_inverse=True)
        row_sums = np.bincount(row_inverse, weights=self.counts, minlength=row_codes.size)
        col_sums = np.bincount(col_inverse, weights=self.counts, minlength=col_codes.size)
        return row_codes, row_sums.astype(np.int64), col_codes, col_sums.astype(np.int64)


def ari(table: Table) -> float | None:
    """sklearn's adjusted_rand_score from the pair-confusion counts; None when there are no pairs."""
    n = table.n
    if n == 0:
        return None
    _, row_sums, _, col_sums = table.margins
    # Python ints from here on, as sklearn does, so the products cannot overflow
    sum_squares = int(np.dot(table.counts, table.counts))
    tp = sum_squares - n
    fp = int(np.dot(col_sums, col_sums)) - sum_squares
    fn = int(np.dot(row_sums, row_sums)) - sum_squares
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _entropy(sums: npt.NDArray[np.float64]) -> float:
    if sums.size == 1:
        return 0.0
    total = float(sums.sum())
    return float(-np.sum((sums / total) * (np.log(sums) - log(total))))


def nmi(table: Table) -> float | None:
    """sklearn's normalized_mutual_info_score (arithmetic); None when there are no pairs."""
    if table.n == 0:
        return None
    row_codes, row_sums_int, col_codes, col_sums_int = table.margins
    if row_sums_int.size == col_sums_int.size == 1:
        return 1.0
    if row_sums_int.size == 1 or col_sums_int.size == 1:
        return 0.0
    # same operations, in the same order, as sklearn's mutual_info_score on a float contingency
    order = np.lexsort((table.cols, table.rows))
    rows, cols = table.rows[order], table.cols[order]
    values = table.counts[order].astype(np.float64)
    row_sums, col_sums = row_sums_int.astype(np.float64), col_sums_int.astype(np.float64)
    pi = row_sums[np.searchsorted(row_codes, rows)]
    pj = col_sums[np.searchsorted(col_codes, cols)]
    total = float(values.sum())
    share = values / total
    outer = pi.astype(np.int64) * pj.astype(np.int64)
    log_outer = -np.log(outer) + log(row_sums.sum()) + log(col_sums.sum())
    terms = share * (np.log(values) - log(total)) + share * log_outer
    terms = np.where(np.abs(terms) < np.finfo(terms.dtype).eps, 0.0, terms)
    mi = float(np.clip(terms.sum(), 0.0, None))
    if mi == 0:
        return 0.0
    return float(mi / np.mean([_entropy(row_sums), _entropy(col_sums)]))


DENSE_CELLS = 250_000  # up to about 500 × 500 clusters a dense Hungarian is fastest; beyond, the sparse one


def matched_accuracy(table: Table) -> float | None:
    """Share of pairs on the best one-to-one cluster matching (Hungarian); None when there are no pairs."""
    n = table.n
    if n == 0:
        return None
    return _best_matching(table)[2] / n


def best_matching(table: Table) -> tuple[Ints, Ints]:
    """The optimal one-to-one label mapping: (row codes, column codes) matched to each other.

    Rows or columns left over (one side has more clusters) are matched to nothing. Ties are broken as
    scipy breaks them, so the mapping is deterministic for a given table.
    """
    if table.n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    rows, cols, _ = _best_matching(table)
    return rows, cols


def _best_matching(table: Table) -> tuple[Ints, Ints, int]:
    """(matched row codes, matched column codes, pairs on the matching)."""
    row_codes, row_at = np.unique(table.rows, return_inverse=True)
    col_codes, col_at = np.unique(table.cols, return_inverse=True)
    if row_codes.size * col_codes.size <= DENSE_CELLS:
        dense = np.zeros((row_codes.size, col_codes.size), dtype=np.int64)
        dense[row_at, col_at] = table.counts
        chosen_rows, chosen_cols = linear_sum_assignment(dense, maximize=True)
        total = int(dense[chosen_rows, chosen_cols].sum())
        # a match on an empty cell (worth 0) maps nothing: drop it, as the sparse path never makes one
        real = dense[chosen_rows, chosen_cols] > 0
        chosen_rows, chosen_cols = chosen_rows[real], chosen_cols[real]
    else:
        chosen_rows, chosen_cols, total = _sparse_best_matching(
            row_at, col_at, table.counts, row_codes.size, col_codes.size)
    return row_codes[chosen_rows].astype(np.int64), col_codes[chosen_cols].astype(np.int64), total


def _sparse_best_matching(rows: Ints, cols: Ints, counts: Ints, n_rows: int, n_cols: int
                          ) -> tuple[Ints, Ints, int]:
    """Maximum-weight matching over the non-empty cells only: (row indexes, column indexes, pairs).

    Each row also gets a private dummy column standing for "matched to nothing" (worth 0 pairs), so a
    full matching of the rows always exists; weights `top - count` turn maximising into minimising.
    Only rows matched to a real cell are returned.
    """
    top = int(counts.max()) + 1
    graph = csr_matrix(
        (np.concatenate([(top - counts).astype(np.float64), np.full(n_rows, float(top))]),
         (np.concatenate([rows, np.arange(n_rows)]), np.concatenate([cols, n_cols + np.arange(n_rows)]))),
        shape=(n_rows, n_cols + n_rows),
    )
    matched_rows, matched_cols = min_weight_full_bipartite_matching(graph)
    real = matched_cols < n_cols
    keys = rows.astype(np.int64) * n_cols + cols
    order = np.argsort(keys)
    wanted = matched_rows[real].astype(np.int64) * n_cols + matched_cols[real]
    at = np.searchsorted(keys[order], wanted)
    # a dummy-free match to an empty cell (worth 0) is no mapping: keep the cells that exist
    exists = (at < keys.size) & (keys[order][np.minimum(at, keys.size - 1)] == wanted)
    total = int(counts[order[at[exists]]].sum())
    return matched_rows[real][exists].astype(np.int64), matched_cols[real][exists].astype(np.int64), total


def summary(table: Table) -> dict[str, float | int | None]:
    return {"pairs": table.n, "ari": ari(table), "nmi": nmi(table), "matched_accuracy": matched_accuracy(table)}


def cluster_map(
    table: Table,
    row_names: Sequence[str],
    col_names: Sequence[str],
    *,
    min_share: float = 0.1,
    limit: int = 20,
) -> dict[str, Any]:
    """Legacy→candidate cluster map: dominant partner per legacy cluster, splits and merges.

    A split is a legacy cluster of which at least two candidate clusters each received ≥ min_share;
    a merge is a candidate cluster to which at least two legacy clusters each gave ≥ min_share of it.
    Smaller cells are the ordinary disagreement noise of two clusterers and are not listed.
    """
    result: dict[str, Any] = {"top": [], "splits": [], "merges": [], "splits_total": 0, "merges_total": 0,
                              "min_share": min_share, "limit": limit}
    if table.n == 0:
        return result
    rows, cols, counts = table.rows, table.cols, table.counts
    row_codes, row_at = np.unique(rows, return_inverse=True)
    col_codes, col_at = np.unique(cols, return_inverse=True)
    row_sums = np.bincount(row_at, weights=counts).astype(np.int64)
    col_sums = np.bincount(col_at, weights=counts).astype(np.int64)
    # each row's largest cell first: sort by row, then by count descending
    order = np.lexsort((-counts, row_at))
    first = order[np.r_[True, row_at[order][1:] != row_at[order][:-1]]]
    biggest_rows = first[np.argsort(-row_sums[row_at[first]], kind="stable")][:limit]
    result["top"] = [
        {"legacy": row_names[int(rows[i])], "candidate": col_names[int(cols[i])], "pairs": int(counts[i]),
         "legacy_pairs": int(row_sums[row_at[i]]), "share": float(counts[i] / row_sums[row_at[i]])}
        for i in biggest_rows.tolist()
    ]
    in_split = counts >= min_share * row_sums[row_at]
    split_rows = np.flatnonzero(np.bincount(row_at[in_split], minlength=row_codes.size) >= 2)
    split_rows = split_rows[np.argsort(-row_sums[split_rows], kind="stable")]
    result["splits"] = [
        {"legacy": row_names[int(row_codes[r])], "pairs": int(row_sums[r]),
         "into": _parts(in_split & (row_at == r), cols, counts, col_names, "candidate")}
        for r in split_rows[:limit].tolist()
    ]
    in_merge = counts >= min_share * col_sums[col_at]
    merge_cols = np.flatnonzero(np.bincount(col_at[in_merge], minlength=col_codes.size) >= 2)
    merge_cols = merge_cols[np.argsort(-col_sums[merge_cols], kind="stable")]
    result["merges"] = [
        {"candidate": col_names[int(col_codes[c])], "pairs": int(col_sums[c]),
         "from": _parts(in_merge & (col_at == c), rows, counts, row_names, "legacy")}
        for c in merge_cols[:limit].tolist()
    ]
    result["splits_total"], result["merges_total"] = int(split_rows.size), int(merge_cols.size)
    return result


def _parts(chosen: npt.NDArray[np.bool_], codes: Ints, counts: Ints, names: Sequence[str], role: str
           ) -> list[dict[str, Any]]:
    cells = np.flatnonzero(chosen)
    cells = cells[np.argsort(-counts[cells], kind="stable")]
    return [{role: names[int(codes[i])], "pairs": int(counts[i])} for i in cells.tolist()]


def contingency_section(table: Table, row_names: Sequence[str], col_names: Sequence[str], *,
                        limit: int = 15, mapping_limit: int = 50) -> dict[str, Any]:
    """The top of the contingency table, laid out so the optimal mapping runs down the diagonal.

    Rows are the `limit` largest legacy clusters; columns are their mapped candidate clusters in the
    same order, then the largest other candidate clusters up to `limit`. `mapping` is the optimal
    one-to-one label mapping (legacy -> candidate), the largest matched cells first.
    """
    result: dict[str, Any] = {"legacy": [], "candidate": [], "counts": [], "pairs": table.n, "pairs_shown": 0,
                              "mapping": [], "mapping_total": 0}
    if table.n == 0:
        return result
    row_codes, row_sums, col_codes, col_sums = table.margins
    matched_rows, matched_cols = best_matching(table)
    partner = dict(zip(matched_rows.tolist(), matched_cols.tolist(), strict=True))
    top_rows = row_codes[np.argsort(-row_sums, kind="stable")[:limit]].tolist()
    cols = [partner[row] for row in top_rows if row in partner]
    for col in col_codes[np.argsort(-col_sums, kind="stable")].tolist():
        if len(cols) >= limit:
            break
        if col not in cols:
            cols.append(col)
    cell = dict(zip(cell_keys(table.rows, table.cols).tolist(), table.counts.tolist(), strict=True))
    counts = [[int(cell.get((row << CODE_BITS) | col, 0)) for col in cols] for row in top_rows]
    matched = [(int(cell[(row << CODE_BITS) | col]), row, col) for row, col in partner.items()]
    matched.sort(key=lambda item: -item[0])
    result.update(
        legacy=[row_names[row] for row in top_rows], candidate=[col_names[col] for col in cols], counts=counts,
        pairs_shown=sum(map(sum, counts)), mapping_total=len(matched),
        mapping=[{"legacy": row_names[row], "candidate": col_names[col], "pairs": pairs}
                 for pairs, row, col in matched[:mapping_limit]])
    return result
