"""Early argument checks whose messages name the bad value and the fix."""

import ast
import difflib
import math
import numbers
from typing import Iterable, Optional, Sequence


def positive_int(name: str, value, *, minimum: int = 1, hint: str = "") -> int:
    """Return `value` if it is an int >= minimum; bools, floats and strings are refused."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not is_int or value < minimum:
        fix = hint or f"pass an integer >= {minimum}, e.g. {name}={max(minimum, 3)}"
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}, got {value!r} "
            f"({type(value).__name__}). Fix: {fix}."
        )
    return int(value)


def choice(name: str, value, choices: Sequence[str]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    suggestion = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value.lower(), list(choices), n=1)
        if close:
            suggestion = f" Did you mean {close[0]!r}?"
    raise ValueError(
        f"Expected `{name}` to be one of {list(choices)}, got {value!r}.{suggestion}"
    )


def input_shape(value, *, min_size: int = 1, model: Optional[str] = None, why: str = "") -> tuple:
    """A (height, width, channels) tuple of positive ints, at least `min_size` pixels a side."""
    owner = f" for {model!r}" if model else ""
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 3
        or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape
        )
    ):
        raise ValueError(
            f"Expected `input_shape`{owner} to be (height, width, channels) with positive "
            f"integers, got {value!r}. Fix: e.g. input_shape=(32, 32, 3)."
        )
    height, width, _ = shape
    if height < min_size or width < min_size:
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"input_shape={shape} is too small{owner}: it needs at least "
            f"{min_size}x{min_size} pixels{reason}. Fix: resize the images to at least "
            f"{min_size}x{min_size} or pick another model."
        )
    return tuple(int(d) for d in shape)


def no_unknown(kwargs: dict, known: Iterable[str], *, where: str) -> None:
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise TypeError(
            f"{where} got unknown argument(s) {unknown}; it accepts {sorted(known)}."
        )


def model_options(entries) -> dict:
    """`--model_option=key=value` flags as a dict.

    Values are parsed as Python literals when they are.
    """
    options = {}
    for entry in entries:
        key, separator, text = entry.partition("=")
        if not separator or not key:
            raise ValueError(
                f"--model_option={entry!r} is not key=value. "
                "Fix: e.g. --model_option=projection_shortcuts=2."
            )
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def positive_float(name, value, example, *, zero=False) -> float:
    """`value` as a float if it is a finite number > 0 (>= 0 with `zero`)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        kind = "non-negative" if zero else "positive"
        raise ValueError(f"Expected `{name}` to be a {kind} number, got {value!r}. Fix: {example}.")
    return float(value)


def width_multiplier(value) -> float:
    """A model's channel `width` multiplier: a finite number > 0 (1.0 = the paper's model)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(
            f"Expected `width` to be a positive number (the factor on every hidden layer's "
            f"channels), got {value!r}. Fix: e.g. width=0.5 for half the channels, 1.0 for "
            "the paper's model."
        )
    return float(value)


def boolean(name, value) -> bool:
    """`value` if it is a bool; a string such as "false" is refused."""
    if not isinstance(value, bool):
        raise ValueError(f"Expected `{name}` to be True or False, got {value!r}.")
    return bool(value)
