"""Two-stage training (`--stages=2`): float weights first, then the binary ones.

Real-to-Binary (Martinez et al., 2020) and Larq Zoo's QuickNet train a BNN in two steps:
stage 1 has the binary activations but real-valued weights, stage 2 the full binary model,
started from stage 1's weights. Here stage 1 is the very model the run trains, with each
binary kernel's quantizer removed (`float_weight_model`): same layers, same names, same
weights, still the sign() on every binary conv's input and the ±1 weight clip, so its
kernels are exactly the latent weights stage 2 binarizes (`copy_weights`).

Workdir layout: stage 1 is a run folder of its own, `<workdir>/stage1/` (history.csv,
best/last model, backup/), and stage 2 is the run's workdir itself, so a two-stage run's
best model, report and export are where every other run has them. Stage 1 counts
`Recipe.stage1_length()` epochs (default half of `epochs`), stage 2 the rest; stage 2
starts from stage 1's best model. Once stage 2 has begun, stage 1 is never trained
again (resume continues stage 2 from its own backup; a grown `epochs` extends stage 2).
"""

import dataclasses
import os

import tensorflow as tf

from larq_tentacle.core.binarization import is_binary_layer
from larq_tentacle.training import callbacks
from larq_tentacle.utils.run_folder import RunFolder

__all__ = [
    "STAGE1",
    "copy_weights",
    "float_weight_model",
    "stage1_report",
    "stage2_started",
    "stage_configs",
]

STAGE1 = "stage1"


def float_weight_model(model: tf.keras.Model) -> tf.keras.Model:
    """`model` with every binary kernel left unquantized (stage 1), holding `model`'s weights.

    Only `kernel_quantizer` changes: the binary activations (`input_quantizer`), the
    weight clip and every other layer stay. Call it in the strategy scope of `model`.
    """

    def unquantized(layer):
        config = layer.get_config()
        if is_binary_layer(layer):
            config["kernel_quantizer"] = None
        return type(layer).from_config(config)

    float_model = tf.keras.models.clone_model(model, clone_function=unquantized)
    copy_weights(model, float_model)
    return float_model


def copy_weights(source: tf.keras.Model, target: tf.keras.Model) -> None:
    """Set every layer of `target` to the weights of `source`'s layer of the same name.

    A stage-1 kernel becomes the latent (unbinarized) kernel of the stage-2 layer.
    """
    names = {layer.name for layer in source.layers}
    missing = sorted(layer.name for layer in target.layers if layer.name not in names)
    if missing:
        raise ValueError(
            f"{source.name!r} has no layers {missing[:3]} of {target.name!r}; the stages must "
            "be the same architecture. Fix: build stage 1 with float_weight_model(model)."
        )
    for layer in target.layers:
        layer.set_weights(source.get_layer(layer.name).get_weights())


def stage2_started(run: RunFolder) -> bool:
    """True once stage 2 (the run folder itself) has completed an epoch or holds a backup."""
    backup = run.backup
    return bool(callbacks.read_history(run.history)) or (
        os.path.isdir(backup) and bool(os.listdir(backup))
    )


def stage_configs(config, *, stage1: RunFolder, stage2: RunFolder):
    """(stage-1 config, stage-2 config) of a two-stage run in these run folders.

    Stage 1 has no binary weights, so `--optimizer=bop` trains it with Adam. Once stage 2
    has begun, stage 1's length is what its history holds (a grown `epochs` extends stage 2).
    """
    stage1_epochs = config.stage1_length()
    if stage2_started(stage2):
        stage1_epochs = len(callbacks.read_history(stage1.history))
    optimizer = "adam" if config.optimizer == "bop" else config.optimizer
    first = dataclasses.replace(config, epochs=stage1_epochs, optimizer=optimizer)
    second = dataclasses.replace(config, epochs=max(1, config.epochs - stage1_epochs))
    return first, second


def stage1_report(stage1: RunFolder) -> dict:
    """What report.json says about stage 1: its epochs, time and best validation scores."""
    rows = callbacks.read_history(stage1.history)
    best = min(rows, key=lambda row: row["val_loss"]) if rows else {}
    return dict(
        epochs_completed=len(rows),
        best_epoch=best.get("epoch"),
        best_val_loss=best.get("val_loss"),
        best_val_accuracy=best.get("val_accuracy"),
        train_time_s=float(sum(row.get("epoch_time_s", 0.0) for row in rows)),
    )
