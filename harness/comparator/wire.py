"""Result rows read straight from their msgpack bytes: a batch of plain rows becomes the join's columns in a few
numpy passes over the joined payloads, with no Python object per field (decoding them was half the comparator's
time). Anything it is not sure of returns None, and the caller takes the general path (records.py, columns.py)."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.comparator.arena import Ints
from harness.comparator.columns import NO_CODE, OUTCOME_CODES, PLAIN_IDS, Codes, Columns
from harness.comparator.join import NO_POSITION
from harness.comparator.pairs import DEVICE, ERR_TYPE, ERROR, KIND, LABEL, OUTCOME
from harness.contracts import RESULT_KEYS, SCHEMA_VERSION
from harness.transport import keys

Bytes = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]

_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_ROW_HEADER = bytes([0xDC, len(RESULT_KEYS) >> 8, len(RESULT_KEYS) & 0xFF])  # array 16 of RESULT_KEYS
_NIL = 0xC0
_PAD = 9  # zero bytes after the last payload: a float read at a truncated row's end stays in the buffer
_TEXT_HEADERS = {0xD9: 1, 0xDA: 2, 0xDB: 4}  # str 8/16/32: bytes of their length
_BYTES_HEADERS = {0xC4: 1, 0xC5: 2, 0xC6: 4}  # bin 8/16/32
# big-endian numbers a time may be, as msgpack writes them (uint 64 left out: numpy would not take it as int64)
_NUMBERS = {0xCA: ">f4", 0xCB: ">f8", 0xCC: ">u1", 0xCD: ">u2", 0xCE: ">u4", 0xD0: ">i1", 0xD1: ">i2",
            0xD2: ">i4", 0xD3: ">i8"}


def _size_table() -> Ints:
    """Bytes taken by a scalar from its type byte; 0: a container, an extension or a variable length."""
    sizes = np.zeros(256, dtype=np.int64)
    sizes[0x00:0x80] = 1  # positive fixint
    sizes[0xE0:0x100] = 1  # negative fixint
    sizes[0xA0:0xC0] = 1 + np.arange(32)  # fixstr
    sizes[[0xC0, 0xC2, 0xC3]] = 1  # nil, false, true
    for code, dtype in _NUMBERS.items():
        sizes[code] = 1 + np.dtype(dtype).itemsize
    sizes[0xCF] = 9  # uint 64
    return sizes


_SIZES = _size_table()
_IS_TEXT = np.zeros(256, dtype=bool)
_IS_TEXT[0xA0:0xC0] = True
_IS_TEXT[list(_TEXT_HEADERS)] = True
_FIXSTR_LENGTHS = np.full(256, -1, dtype=np.int64)
_FIXSTR_LENGTHS[0xA0:0xC0] = np.arange(32)
_TEXT_OR_NIL = np.where(_FIXSTR_LENGTHS >= 0, _FIXSTR_LENGTHS, -2)  # -1: nil, -2: anything else
_TEXT_OR_NIL[_NIL] = -1
_THREE_FLOATS = np.arange(27).reshape(3, 9)  # three float 64s in a row: their type bytes at 0, 9 and 18


class _Unsure(Exception):
    """The batch holds something the general path must judge."""


class _Rows:
    """A cursor per row over the joined payloads, moved field by field."""

    def __init__(self, buf: Bytes, starts: Ints, ends: Ints) -> None:
        self.buf, self.pos, self.ends = buf, starts, ends

    def type_bytes(self) -> Ints:
        return self.buf[self.pos].astype(np.int64)

    def read(self, width: int, offset: int = 1) -> Ints:
        """Each row's big-endian unsigned int of `width` bytes at its cursor + offset."""
        value = np.zeros(self.pos.size, dtype=np.int64)
        for byte in range(width):
            value = value << 8 | self.buf[self.pos + offset + byte]
        return value

    def advance(self, sizes: Ints, *, check: bool = True) -> None:
        """`check=False` when every size is small: a row overrun then shows at the end (see _parse), or as an
        IndexError past the buffer."""
        self.pos = self.pos + sizes
        if check and np.any(self.pos > self.ends):
            raise _Unsure("a row is shorter than its fields")

    def skip(self) -> None:
        """Any scalar (the fields the comparator does not read); a str must still be UTF-8, as msgpack wants."""
        types = self.buf[self.pos]
        sizes = _SIZES[types]
        fixstr = _FIXSTR_LENGTHS[types]
        if sizes.min() > 0:  # fixed sizes and fixstr: the common case
            texts = fixstr >= 0
            if texts.any():
                _check_utf8(self.buf, self.pos[texts] + 1, fixstr[texts])
            self.advance(sizes, check=False)
            return
        wide = types.astype(np.int64)
        texts = _IS_TEXT[wide]
        headers, lengths = self._spans(wide, _TEXT_HEADERS)
        sizes = np.where(texts, headers + lengths, sizes)
        if not sizes.all():
            headers, lengths = self._spans(wide, _BYTES_HEADERS)
            sizes = np.where(sizes == 0, headers + lengths, sizes)
            if not sizes.all():
                raise _Unsure("a container or an extension in a row")
        self.advance(sizes)
        if texts.any():
            _check_utf8(self.buf, (self.pos - sizes + headers)[texts], lengths[texts])

    def _spans(self, types: Ints, prefixed: dict[int, int]) -> tuple[Ints, Ints]:
        """Per row: the header size and the length of a fixstr or of a length-prefixed value of `prefixed`
        (0, 0 for any other type)."""
        lengths = np.maximum(_FIXSTR_LENGTHS[types], 0)
        headers = (_FIXSTR_LENGTHS[types] >= 0).astype(np.int64)
        for code, width in prefixed.items():
            chosen = types == code
            if chosen.any():
                lengths[chosen] = _Rows(self.buf, self.pos[chosen], self.ends[chosen]).read(width)
                headers[chosen] = 1 + width
        return headers, lengths

    def text(self, *, nil: bool) -> tuple[Ints, Ints]:
        """A str (or nil, if allowed) per row: (where its UTF-8 starts, its length; -1 for nil)."""
        types = self.buf[self.pos]
        lengths = (_TEXT_OR_NIL if nil else _FIXSTR_LENGTHS)[types]
        if lengths.min() >= -1:  # all fixstr (or nil, when allowed): the common case
            starts = self.pos + 1
            self.advance(np.maximum(lengths + 1, 1), check=False)
            return starts, lengths
        wide = types.astype(np.int64)
        texts = _IS_TEXT[wide]
        if not texts.all() and not (nil and (texts | (wide == _NIL)).all()):
            raise _Unsure("not text")
        headers, lengths = self._spans(wide, _TEXT_HEADERS)
        starts = self.pos + headers
        self.advance(np.maximum(headers + lengths, 1))  # nil: one byte
        return starts, np.where(texts, lengths, -1)

    def floats(self) -> Floats:
        """Three numbers in a row, as float64s (n, 3)."""
        raw = self.buf[self.pos[:, None] + _THREE_FLOATS.ravel()].reshape(-1, 3, 9)
        if (raw[:, :, 0] == 0xCB).all():  # three float 64s: the common case
            self.advance(np.full(self.pos.size, 27, dtype=np.int64), check=False)
            values: Floats = raw[:, :, 1:].copy().view(">f8").reshape(-1, 3).astype(np.float64)
            return values
        return np.column_stack([self._number() for _ in range(3)])

    def _number(self) -> Floats:
        types = self.type_bytes()
        values = np.zeros(types.size, dtype=np.float64)
        small = (types < 0x80) | (types >= 0xE0)
        values[small] = np.where(types[small] >= 0xE0, types[small] - 256, types[small])
        done = small.copy()
        for code, dtype in _NUMBERS.items():
            chosen = types == code
            if chosen.any():
                width = np.dtype(dtype).itemsize
                raw = self.buf[self.pos[chosen, None] + 1 + np.arange(width)]
                values[chosen] = raw.view(dtype).ravel()
                done |= chosen
        if not done.all():
            raise _Unsure("a time that is not a number numpy reads as such")
        self.advance(_SIZES[types], check=False)
        return values


def _gather(buf: Bytes, starts: Ints, lengths: Ints) -> tuple[Bytes, Ints]:
    """The bytes at (starts, lengths), each span followed by one spare byte; and where the spare bytes are."""
    spans = lengths + 1
    out_starts = np.cumsum(spans) - spans
    source = np.arange(int(spans.sum()), dtype=np.int64) + np.repeat(starts - out_starts, spans)
    return buf[source], out_starts + lengths


def _check_utf8(buf: Bytes, starts: Ints, lengths: Ints) -> None:
    if not lengths.size:
        return
    width = int(lengths.max())
    if width <= 32:  # short texts: one rectangular gather tells whether they are all ASCII
        columns = np.arange(width)
        square = buf[starts[:, None] + columns]
        if not (square[columns < lengths[:, None]] >= 0x80).any():
            return
    gathered, spare = _gather(buf, starts, lengths)
    if gathered.size and gathered.max() >= 0x80:  # ASCII needs no decoding
        gathered[spare] = 0x0A  # ASCII between the texts: a sequence cut short at a text's end stays invalid
        try:
            gathered.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise _Unsure("not UTF-8") from None


def _texts(buf: Bytes, starts: Ints, lengths: Ints) -> list[str]:
    """The strs at (starts, lengths), decoded as msgpack would (strict UTF-8), in one decode."""
    n = starts.size
    if not n:
        return []
    gathered, spare = _gather(buf, starts, lengths)
    gathered[spare] = 0x0A
    try:
        parts = gathered[:-1].tobytes().decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise _Unsure("not UTF-8") from None
    if len(parts) != n:
        raise _Unsure("a newline in a text")
    return parts


def _with_nils(buf: Bytes, starts: Ints, lengths: Ints) -> list[str | None]:
    present = lengths >= 0
    if present.all():
        return list(_texts(buf, starts, lengths))
    values = np.full(starts.size, None, dtype=object)
    values[present] = _texts(buf, starts[present], lengths[present])
    listed: list[str | None] = values.tolist()
    return listed


_HASH = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93],
                 dtype=np.uint64)  # odd multipliers: a hash only groups equal texts fast; equality is checked
_WIDEST = 8 * (len(_HASH) - 1)  # longer texts are decoded one by one


def _distinct(buf: Bytes, starts: Ints, lengths: Ints, wanted: npt.NDArray[np.bool_]) -> tuple[Ints, Ints, list[str]]:
    """The wanted non-nil texts grouped by their bytes, without decoding each: (their rows, each one's group,
    each group's text in order of first appearance)."""
    rows = np.flatnonzero(wanted & (lengths >= 0))
    if not rows.size:
        return rows, rows, []
    sizes = lengths[rows]
    width = int(sizes.max())
    if width >= _WIDEST:
        texts = _texts(buf, starts[rows], sizes)
        firsts: dict[str, int] = {}
        groups = np.fromiter((firsts.setdefault(text, len(firsts)) for text in texts), dtype=np.int64,
                             count=len(texts))
        return rows, groups, list(firsts)
    columns = np.arange(8 * (width // 8 + 1))
    square = buf[starts[rows, None] + columns]
    square[columns >= sizes[:, None]] = 0
    words = square.view(np.uint64)
    hashed = sizes.astype(np.uint64) * _HASH[-1]
    for word in range(words.shape[1]):
        hashed += words[:, word] * _HASH[word]
    _, first, groups = np.unique(hashed, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups renumbered by first appearance: new codes are given in row order
    renumber = np.empty_like(order)
    renumber[order] = np.arange(order.size)
    groups, first = renumber[groups.ravel()], first[order]
    if not (square == square[first[groups]]).all():
        raise _Unsure("two texts share a hash")  # equal bytes and equal lengths (zero-padded): equal texts
    return rows, groups, _texts(buf, starts[rows[first]], sizes[first])


def _assign(n: int, distinct: tuple[Ints, Ints, list[str]], code_map: dict[Any, int]) -> Ints:
    """Codes of the texts, NO_CODE elsewhere; a text seen for the first time gets the next code (as _coded)."""
    rows, groups, texts = distinct
    coded = np.full(n, NO_CODE, dtype=np.int64)
    codes = np.array([code_map.setdefault(text, len(code_map)) for text in texts], dtype=np.int64)
    coded[rows] = codes[groups]
    return coded


def _outcomes(buf: Bytes, starts: Ints, lengths: Ints) -> Ints:
    """Outcome codes from the raw bytes: the three names have three lengths, so a length names the candidate."""
    codes = np.full(starts.size, -1, dtype=np.int64)
    for name, code in OUTCOME_CODES.items():
        chosen = np.flatnonzero(lengths == len(name))
        if chosen.size:
            raw = buf[starts[chosen, None] + np.arange(len(name))]
            if not (raw == np.frombuffer(name.encode(), dtype=np.uint8)).all():
                raise _Unsure("an unknown outcome")
            codes[chosen] = code
    if (codes < 0).any():
        raise _Unsure("an unknown outcome")
    return codes


def _positions(buf: Bytes, starts: Ints, lengths: Ints) -> tuple[Ints, Ints]:
    n = starts.size
    if (lengths < 0).all():
        return np.full(n, NO_POSITION >> 32, dtype=np.int64), np.full(n, NO_POSITION & 0xFFFFFFFF, dtype=np.int64)
    if (lengths < 0).any():
        raise _Unsure("some results without their input entry")
    text = "\n".join(_texts(buf, starts, lengths))
    if not PLAIN_IDS.fullmatch(text + "\n"):
        raise _Unsure("an input entry id that is not plain")
    halves = np.fromstring(text.replace("-", "\n"), dtype=np.int64, sep="\n")
    return halves[0::2].copy(), halves[1::2].copy()


def parse_entries(entries: list[Any], codes: Codes) -> Columns | None:
    """The columns of a raw XREADGROUP batch whose every entry is one plain result row; None otherwise."""
    n = len(entries)
    try:
        fields = list(map(_SECOND, entries))
        if list(map(len, fields)).count(2) != n or list(map(_FIRST, fields)).count(keys.PAYLOAD_FIELD) != n:
            return None
        payloads = list(map(_SECOND, fields))
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
        joined = b"".join(payloads)
    except TypeError:
        return None
    if not n:
        return None
    buf = np.frombuffer(joined + bytes(_PAD), dtype=np.uint8)
    ends = np.cumsum(lengths)
    try:
        return _parse(buf, ends - lengths, ends, codes)
    except (_Unsure, IndexError):
        return None


def _header_ok(buf: Bytes, starts: Ints, ends: Ints) -> bool:
    if (ends - starts < len(_ROW_HEADER) + 1).any():
        return False
    raw = buf[starts[:, None] + np.arange(len(_ROW_HEADER) + 1)]
    return bool((raw == np.frombuffer(_ROW_HEADER + bytes([SCHEMA_VERSION]), dtype=np.uint8)).all())


def _parse(buf: Bytes, starts: Ints, ends: Ints, codes: Codes) -> Columns:
    if SCHEMA_VERSION >= 0x80 or not _header_ok(buf, starts, ends):
        raise _Unsure("not a row of this schema")
    rows = _Rows(buf, starts + len(_ROW_HEADER) + 1, ends)
    texts: dict[str, tuple[Ints, Ints]] = {}
    numbers: dict[str, Floats] = {}
    readers: dict[str, Callable[[], None]] = {
        "id": lambda: texts.__setitem__("id", rows.text(nil=False)),
        "outcome": lambda: texts.__setitem__("outcome", rows.text(nil=False)),
    }
    for key in ("label", "device", "kind", "err_type", "entry"):
        readers[key] = lambda key=key: texts.__setitem__(key, rows.text(nil=True))  # type: ignore[misc]
    readers["entered_ms"] = lambda: numbers.__setitem__("times", rows.floats())
    readers["published_ms"] = readers["proc_ms"] = lambda: None  # read with entered_ms
    for key in RESULT_KEYS[1:]:
        readers.get(key, rows.skip)()
    if not np.array_equal(rows.pos, ends):
        raise _Unsure("bytes after a row")
    # Everything is read and checked before any code is given: a batch given up leaves the codes untouched.
    n = ends.size
    ids = _texts(buf, *texts["id"])
    outcomes = _outcomes(buf, *texts["outcome"])
    every = np.ones(n, dtype=bool)
    labels = _distinct(buf, *texts["label"], outcomes == 0)
    devices, kinds = _distinct(buf, *texts["device"], every), _distinct(buf, *texts["kind"], every)
    error_rows = np.flatnonzero(outcomes == ERROR)
    error_starts, error_lengths = (part[error_rows] for part in texts["err_type"])
    error_types = _with_nils(buf, error_starts, error_lengths)
    high, low = _positions(buf, *texts["entry"])
    slots = np.empty((n, 5), dtype=np.int64)
    label_codes = _assign(n, labels, codes.labels)
    outcomes[(outcomes == 0) & (label_codes == NO_CODE)] = 1  # as in columns.py: no label, not comparable
    slots[:, OUTCOME] = outcomes
    slots[:, LABEL] = label_codes
    slots[:, DEVICE] = _assign(n, devices, codes.devices)
    slots[:, KIND] = _assign(n, kinds, codes.kinds)
    slots[:, ERR_TYPE] = NO_CODE
    for at, error in zip(error_rows.tolist(), error_types, strict=True):
        slots[at, ERR_TYPE] = codes.error_types.setdefault(error or "unknown", len(codes.error_types))
    times = numbers["times"]  # entered, published, processing: their order in RESULT_KEYS
    return Columns(ids, slots, outcomes, np.maximum(times[:, 1] - times[:, 0], 0.0), times[:, 2].copy(), high, low)
