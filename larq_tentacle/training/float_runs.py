"""The trained model of a finished float run, for the runs that start from one
(`--init_from`) or learn from one (`--teacher`)."""

import os

import tensorflow as tf

from larq_tentacle.core.serialization import load_model
from larq_tentacle.utils.run_folder import RunFolder


def load_float_model(workdir, *, flag: str, input_shape, num_classes: int) -> tf.keras.Model:
    """The best model of the run in `workdir`, checked to take this run's input and classes.

    `flag` names the option that gave the workdir (e.g. "--teacher") in the errors.
    """
    path = RunFolder(os.path.expanduser(os.fspath(workdir))).best_model
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{flag}={os.fspath(workdir)!r} has no {RunFolder.BEST_MODEL} (looked at "
            f"{path!r}). Fix: pass the workdir of a finished --precision=float run."
        )
    model = load_model(path, compile=False)
    expected = (tuple(input_shape), int(num_classes))
    found = (tuple(model.input_shape[1:]), int(model.output_shape[-1]))
    if found != expected:
        raise ValueError(
            f"{flag}={os.fspath(workdir)!r} holds a model for input {found[0]} with "
            f"{found[1]} classes, but this run needs input {expected[0]} with {expected[1]} "
            "classes. Fix: train the float run on the same dataset and --input_size."
        )
    return model
