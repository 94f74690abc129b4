"""What text may travel in a contract: ids, devices and kinds that are safe as Redis key names,
log fields and msgpack strings (encodable UTF-8, no control characters, short)."""

from __future__ import annotations

import unicodedata

MAX_TEXT_BYTES = 256  # ids, devices, kinds, channels, tags: they become key names and log fields
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})  # C0/C1 controls and line breaks: stable across Unicode


def text_problem(value: str) -> str | None:
    """Why this id, device or kind cannot become a key name, a log field or msgpack text; None if it can."""
    too_long = f"is longer than {MAX_TEXT_BYTES} bytes"
    if len(value) > MAX_TEXT_BYTES:  # a character is at least one byte: no need to encode a huge string
        return too_long
    if value.isascii():  # the usual case, on the hot path: one byte a character, controls are unprintable
        return None if value.isprintable() else "contains a control character"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8 (it holds a lone surrogate)"
    if size > MAX_TEXT_BYTES:
        return too_long
    if any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in value):
        return "contains a control character"
    return None


def valid_signal_id(value: object) -> str | None:
    """`value` if it is a usable signal id: a non-blank string that passes `text_problem`."""
    if isinstance(value, str) and value.strip() and text_problem(value) is None:
        return value
    return None


def safe_text(text: str) -> str:
    """`text` with anything UTF-8 cannot encode (lone surrogates) escaped as `\\udXXX`."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
