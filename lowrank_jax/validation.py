"""One-sentence errors for a user's bad input, shared by every check in the package and
by the entry points in train/ (which print them and exit 2)."""
from __future__ import annotations

import math
import re
from typing import Any, Mapping


INT32_MAX = 2**31 - 1   # counts and sizes live in int32 arrays


class UserError(ValueError):
    """Bad input a user can fix (a config value, an argument, a file, a workdir); the
    message is one sentence naming what was given and what is allowed."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def check_flag(field: str, value: Any) -> None:
    require(isinstance(value, bool), f"{field}={value!r} is not allowed; it must be true or false.")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(field: str, value: Any) -> None:
    """A count or a size: at least 1, and within int32, where the arrays hold it."""
    require(is_int(value) and value >= 1,
            f"{field}={value!r} is not allowed; it must be a positive integer.")
    require(value <= INT32_MAX, f"{field}={value!r} is not allowed; it must be at most {INT32_MAX}.")


def is_digits(text: str) -> bool:
    """0-9 alone: a whole number int() reads (str.isdigit also takes '²', which it refuses)."""
    return re.fullmatch(r"[0-9]+", text) is not None


def is_number(value: Any) -> bool:
    """A finite int or float: NaN and infinities are never a setting."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_choice(field: str, value: Any, allowed) -> None:
    require(value in allowed,
            f"{field}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}.")


def check_kwargs(owner: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict:
    """Fills defaults and refuses unknown keys; values are checked by their owner."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise UserError(f"{owner} got unknown key {unknown[0]!r}; allowed keys are {allowed}.")
    return {**defaults, **given}
