"""absl flags generated from the config dataclasses: one flag per field, help from its metadata.

`define_recipe_flags` defines the flags the apps that train (train.py, sweep.py) share:
the model and data fields and every `Recipe` field the app's config has. train.py adds
the rest of `TrainConfig` with `define_config_flags`. The flag type follows the field
type (int, float, str, bool; Optional[...] defaults to None); a field's metadata may
rename the flag (`flag`) and convert its text (`from_flag`, e.g. `--fused=true`).
Choices are checked by the config's `resolved()`, so a bad value is one error line
with the fix, as every other bad flag.
"""

import dataclasses
import typing

from absl import flags

from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.recipe import recipe_fields

# The model and data fields every training app has; the recipe's fields follow them.
SHARED_FIELDS = (
    "model", "dataset", "data_dir", "cache_mb", "skip_bad_images", "input_size", "model_options"
)

_DEFINE = {
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
    bool: flags.DEFINE_bool,
}


def flag_name(field_name: str) -> str:
    """The flag of a TrainConfig field (e.g. model_options -> model_option)."""
    return _fields()[field_name].metadata.get("flag", field_name)


def define_recipe_flags(defaults, flag_values=flags.FLAGS, *, exclude=()) -> tuple:
    """Define the model/data flags and one flag per recipe field that `defaults` has.

    Defaults are read from `defaults` (a TrainConfig or SweepConfig); fields in `exclude`
    get no flag (e.g. the sweep's `seed`, which its `--seeds` replaces). Returns the field
    names defined.
    """
    names = SHARED_FIELDS + tuple(
        name for name in recipe_fields() if hasattr(defaults, name) and name not in exclude
    )
    define_config_flags(defaults, names, flag_values)
    return names


def define_config_flags(defaults, names, flag_values=flags.FLAGS) -> None:
    """One flag per TrainConfig field in `names`, with its default read from `defaults`."""
    fields = _fields()
    for name in names:
        field = fields[name]
        default = None if name == "model" else getattr(defaults, name)
        help_text = field.metadata["help"]
        flag = field.metadata.get("flag", name)
        if field.type is dict:
            flags.DEFINE_multi_string(flag, [], help_text, flag_values=flag_values)
        elif "from_flag" in field.metadata:
            text = None if default is None else str(default).lower()
            flags.DEFINE_string(flag, text, help_text, flag_values=flag_values)
        else:
            _DEFINE[_flag_type(field)](flag, default, help_text, flag_values=flag_values)


def recipe_values(parsed) -> dict:
    """The config fields the recipe flags set, read from parsed flags (FLAGS)."""
    if parsed.model is None:
        raise ValueError("--model is required. Fix: e.g. --model=nin (see lt.list_models()).")
    names = SHARED_FIELDS + tuple(name for name in recipe_fields() if name in parsed)
    return config_values(parsed, names)


def config_values(parsed, names) -> dict:
    """The TrainConfig fields `names` from parsed flags, converted where a field says how."""
    fields = _fields()
    values = {}
    for name in names:
        metadata = fields[name].metadata
        value = getattr(parsed, metadata.get("flag", name))
        convert = metadata.get("from_flag")
        values[name] = convert(value) if convert is not None and value is not None else value
    return values


def _fields() -> dict:
    return {field.name: field for field in dataclasses.fields(TrainConfig)}


def _flag_type(field) -> type:
    """int for `int` and `Optional[int]`, etc."""
    if field.type in _DEFINE:
        return field.type
    arguments = [a for a in typing.get_args(field.type) if a is not type(None)]
    if len(arguments) == 1 and arguments[0] in _DEFINE:
        return arguments[0]
    raise TypeError(
        f"TrainConfig.{field.name} has type {field.type!r}, which has no absl flag type. "
        "Fix: give the field metadata from_flag=<parser of the flag's text>."
    )
