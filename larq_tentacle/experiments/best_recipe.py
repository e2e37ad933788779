"""A sweep's second recipe: the TentacleNet and bagging points trained beyond the paper.

A sweep trains every point with its own recipe, "paper" (the sweep's `Recipe` as given).
`SweepConfig.best_recipe` names a second one as overrides of that recipe, e.g.

    --best_recipe=block=react,rprelu=true,teacher=fp32,stages=2

and the sweep then also trains, for every TentacleNet n and bagging N, a point with it
(`recipe="best"` in the points, sweep.csv and summary.csv). `teacher=fp32` distils each
point (and each bagging member) from the FP32 point of the same seed in the same sweep,
the model TentacleNet trains first anyway.

The epoch budget, the seed and the FP32 learning-rate grid are the sweep's and cannot be
overridden: every method of a sweep trains the same number of epochs.
"""

import dataclasses
import typing
from typing import Optional

from larq_tentacle.training.recipe import Recipe, recipe_fields

__all__ = ["PILOT_BEST_RECIPE", "RECIPES", "TEACHER_KEY", "apply_best_recipe",
           "check_best_recipe", "best_recipe_from_flag", "describe"]

RECIPES = ("paper", "best")
# The recipe pilot's choice (docs/results/recipe_pilot.md: the highest mean validation
# accuracy of TentacleNet n=3 on digits over three seeds), as `--best_recipe` text. The
# main job trains it next to the paper's recipe; the item-7 sweep passed the same text.
PILOT_BEST_RECIPE = "block=react,teacher=fp32"
TEACHER_KEY = "teacher"
# The only teacher a sweep can name: the seed's own FP32 point.
TEACHER_FROM_SWEEP = "fp32"
_FIXED = {
    "epochs": "every method of a sweep trains the same epoch budget",
    "seed": "every point takes its seed from the sweep's seeds",
    "lr_grid": "the grid chooses the FP32 reference's learning rate, not a binary point's",
}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def best_recipe_from_flag(text) -> dict:
    """`--best_recipe=key=value,key=value` as a dict of strings ("" or None -> {})."""
    if text is None:
        return {}
    if isinstance(text, dict):
        return dict(text)
    overrides = {}
    for entry in filter(None, (part.strip() for part in str(text).split(","))):
        key, separator, value = entry.partition("=")
        if not separator or not key.strip() or not value.strip():
            raise ValueError(
                f"--best_recipe={text!r}: {entry!r} is not key=value. "
                "Fix: e.g. --best_recipe=block=react,teacher=fp32."
            )
        overrides[key.strip()] = value.strip()
    return overrides


def check_best_recipe(overrides, recipe: Recipe) -> dict:
    """The overrides, typed and checked against `recipe`; raises ValueError naming the key.

    Keys are `Recipe` fields (not epochs, seed, lr_grid) and `teacher`, whose one value is
    "fp32" (the seed's FP32 point). Values may be strings (from the flag) or typed.
    """
    overrides = best_recipe_from_flag(overrides)
    fields = {field.name: field for field in dataclasses.fields(Recipe)}
    typed = {}
    for key, value in overrides.items():
        if key == TEACHER_KEY:
            if str(value).lower() != TEACHER_FROM_SWEEP:
                raise ValueError(
                    f"best_recipe teacher={value!r}: a sweep distils from the seed's own FP32 "
                    "point. Fix: teacher=fp32."
                )
            typed[key] = TEACHER_FROM_SWEEP
        elif key in _FIXED:
            raise ValueError(
                f"best_recipe cannot set {key!r}: {_FIXED[key]}. Fix: drop {key}= from it."
            )
        elif key not in fields:
            known = ", ".join(n for n in recipe_fields() if n not in _FIXED)
            raise ValueError(
                f"best_recipe has an unknown key {key!r}. Fix: use {TEACHER_KEY} or a recipe "
                f"field: {known}."
            )
        else:
            typed[key] = _typed(fields[key], value)
    # The recipe's own checks, on the recipe the best points train with.
    apply_best_recipe(recipe, typed).resolved_recipe()
    return typed


def apply_best_recipe(recipe: Recipe, overrides: dict) -> Recipe:
    """`recipe` (a Recipe or a config inheriting it) with the overrides, without `teacher`."""
    fields = {k: v for k, v in overrides.items() if k != TEACHER_KEY}
    return dataclasses.replace(recipe, **fields)


def describe(overrides: Optional[dict]) -> str:
    """"block=react, teacher=fp32", or "" for none."""
    return ", ".join(f"{k}={v}" for k, v in sorted((overrides or {}).items()))


def _typed(field, value):
    """`value` (a flag's text or already typed) as the field's type."""
    if not isinstance(value, str):
        return value
    convert = field.metadata.get("from_flag")
    if convert is not None:
        return convert(value)
    kind = field.type
    arguments = [a for a in typing.get_args(kind) if a is not type(None)]
    if arguments:  # Optional[int] etc.
        if value.lower() == "none":
            return None
        kind = arguments[0]
    if kind is bool:
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
    else:
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    raise ValueError(
        f"best_recipe {field.name}={value!r} is not of type {kind.__name__}. "
        f"Fix: e.g. {field.name}={getattr(Recipe(), field.name)!r}."
    )
