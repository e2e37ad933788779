"""Argument checks and the Larq Compute Engine conversion itself.

`lce.convert_keras_model` never complains when a binary model converts badly,
and its own errors rarely name the layer at fault. The checks here refuse what
cannot become a runnable LCE file before converting (mixed precision, a free
input size, images that are not preprocessed), and `convert` turns the
converter's failures and unknown custom ops into `ExportError`s that say which
layer to change. It converts the model with the padding LCE would misconvert trimmed
(`padding`, a copy) and binary thresholds it would round moved off the lattice
(`thresholds`, restored afterwards). Nothing here writes a file.
"""

import json
import os
import warnings
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from larq_tentacle.deploy import padding, rules, thresholds
from larq_tentacle.deploy.options import TARGETS
from larq_tentacle.deploy.tflite_file import read_flatbuffer
from larq_tentacle.utils import validation

_PREPROCESSING_KEYS = ("input_shape", "pixel_scale", "mean", "std")


class ExportError(ValueError):
    """The model cannot be converted to a usable LCE `.tflite` (nothing was written)."""


def check_model(model) -> tf.keras.Model:
    """`model` (or the model saved at that path) if export supports it, else a clear error."""
    if isinstance(model, (str, os.PathLike)):
        from larq_tentacle.core.serialization import load_model

        model = load_model(model, compile=False)
    if not isinstance(model, tf.keras.Model):
        raise TypeError(
            f"Expected a tf.keras.Model (or the path of a saved one), got {type(model).__name__}. "
            "Fix: pass lt.build(...) / a trained model, or lt.load_model(path)."
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"export supports models with one input and one output; {model.name!r} has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs."
        )
    mixed = [
        f"{layer.name} ({layer.dtype_policy.name})"
        for layer in [model] + list(model.layers)
        if getattr(layer, "dtype_policy", None) is not None
        and layer.dtype_policy.name != "float32"
    ]
    if mixed:
        raise ExportError(
            f"{model.name!r} uses mixed precision in {mixed[:5]}; the TFLite converter cannot "
            "convert float16 layers. Fix: rebuild the model under "
            "tf.keras.mixed_precision.set_global_policy('float32') and copy the weights "
            "(model32.set_weights(model.get_weights()))."
        )
    return model


def fixed_input_shape(model: tf.keras.Model) -> tuple:
    """The model's input shape without the batch axis; LCE needs every size fixed."""
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise ValueError(
            f"{model.name!r} has input shape {model.input_shape}; LCE needs a fixed image size. "
            "Fix: build the model with input_shape=(height, width, channels)."
        )
    return shape


def check_images(x, input_shape: Sequence[int], *, name: str = "x_sample") -> np.ndarray:
    """`x` as a float32 batch of preprocessed images of `input_shape`, or a clear error."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, tf.Tensor):
            x = x.numpy()
        else:
            raise TypeError(
                f"Expected `{name}` to be a numpy array of images, got {type(x).__name__}. "
                "Fix: pass e.g. bundle.arrays.x_test[:64]."
            )
    if not (np.issubdtype(x.dtype, np.floating)):
        raise ValueError(
            f"`{name}` has dtype {x.dtype}, but the model takes float32 images that are already "
            "preprocessed (x = (pixels / pixel_scale - mean) / std). Fix: preprocess the images "
            "first, e.g. use the arrays from lt.data.load_arrays(...)."
        )
    shape = tuple(input_shape)
    if x.shape == shape:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"`{name}` has shape {x.shape}; the model takes a batch of shape "
            f"(N, {', '.join(map(str, shape))}).{_shape_hint(x, shape)} "
            f"Fix: resize/convert the images to {shape} before preprocessing."
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty. Fix: pass at least one image.")
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"`{name}` contains NaN or infinite values. Fix: check the preprocessing."
        )
    return x.astype(np.float32, copy=False)


def _shape_hint(x: np.ndarray, shape: tuple) -> str:
    if x.ndim != 4:
        return ""
    if x.shape[-1] != shape[2]:
        return f" The images have {x.shape[-1]} channels, the model takes {shape[2]}."
    return f" The images are {x.shape[1]}x{x.shape[2]}, the model takes {shape[0]}x{shape[1]}."


def check_preprocessing(preprocessing, input_shape) -> object:
    """The preprocessing dict (read from a path if given one), or "none"."""
    if preprocessing is None or preprocessing == "none":
        return "none"
    if isinstance(preprocessing, (str, os.PathLike)):
        path = os.fspath(preprocessing)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No preprocessing file at {path!r}. Fix: pass a training workdir's "
                "preprocessing.json, a dict, or 'none'."
            )
        with open(path, encoding="utf-8") as file:
            preprocessing = json.load(file)
    if not isinstance(preprocessing, dict):
        raise TypeError(
            f"Expected `preprocessing` to be a dict (see preprocessing.json), a path or 'none', "
            f"got {type(preprocessing).__name__}."
        )
    missing = [key for key in _PREPROCESSING_KEYS if key not in preprocessing]
    if missing:
        raise ValueError(
            f"`preprocessing` lacks {missing}; it needs {list(_PREPROCESSING_KEYS)} (the format of "
            "a training workdir's preprocessing.json). Fix: pass that file."
        )
    if tuple(preprocessing["input_shape"]) != tuple(input_shape):
        raise ValueError(
            f"preprocessing input_shape {list(preprocessing['input_shape'])} does not match the "
            f"model's input shape {list(input_shape)}. Fix: pass the preprocessing.json of the "
            "run that trained this model."
        )
    channels = input_shape[2]
    for key in ("mean", "std"):
        values = preprocessing[key]
        if not isinstance(values, (list, tuple)) or len(values) not in (1, channels):
            raise ValueError(
                f"preprocessing[{key!r}] = {values!r} must list 1 or {channels} per-channel values."
            )
    if any(float(s) == 0 for s in preprocessing["std"]):
        raise ValueError(f"preprocessing['std'] = {preprocessing['std']} contains a zero.")
    return dict(preprocessing)


def check_class_names(class_names, preprocessing, num_outputs) -> Optional[list]:
    """The label names (default: the preprocessing's), one per output, or None."""
    if class_names is None and isinstance(preprocessing, dict):
        class_names = preprocessing.get("class_names")
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"Expected `class_names` to be a list of strings, got {class_names!r}.")
    class_names = list(class_names)
    if len(class_names) != num_outputs:
        raise ValueError(
            f"{len(class_names)} class names given but the model has {num_outputs} outputs. "
            "Fix: pass one name per class, in label order."
        )
    return class_names


def needs_indirect_bgemm(model: tf.keras.Model) -> bool:
    """Grouped binary convs (fused tentacles) only run with LCE's indirect BGEMM kernel."""
    return any(
        rules.is_binary_conv(layer) and getattr(layer, "groups", 1) > 1 for layer in model.layers
    )


# ---------------------------------------------------------------------------
# Conversion


def convert(model: tf.keras.Model, *, target: str = "arm", int8_io: bool = False) -> bytes:
    """LCE conversion with errors that name the problem (no file is written).

    `int8_io` asks for int8 input and output; it only takes effect on a model with
    int8 ranges (`core.int8`), which `deploy.int8` checks in the written file.
    """
    import larq_compute_engine as lce

    target = validation.choice("target", target, TARGETS)
    model = check_model(model)
    fixed_input_shape(model)
    # Same function, with binary thresholds LCE 0.16 would round onto the lattice centred
    # (deploy/thresholds.py) and padding it would misfuse trimmed (deploy/padding.py).
    with warnings.catch_warnings(record=True) as caught, thresholds.centred_thresholds(model):
        warnings.simplefilter("always")
        convertible = padding.without_misfused_padding(model)
        try:
            io = {"inference_input_type": tf.int8, "inference_output_type": tf.int8}
            flatbuffer = lce.convert_keras_model(
                convertible, target=target, **(io if int8_io else {})
            )
        # The converter is TF's MLIR pipeline: it raises ConverterError, OpError, ValueError,
        # RuntimeError... with no common base below Exception; every one becomes an ExportError.
        except Exception as error:
            raise ExportError(_conversion_error(model, error)) from error
    fallback = [w for w in caught if "falling back" in str(w.message)]
    if fallback:
        # LCE swallowed the SavedModel error; the graphdef path usually works, but say so.
        warnings.warn(
            f"LCE could not convert {model.name!r} through a SavedModel and used its graphdef "
            "fallback; check that every layer has a working get_config.",
            stacklevel=2,
        )
    graph = read_flatbuffer(flatbuffer, what="the converter's output")
    problems = rules.unsupported_op_problems(graph, [layer.name for layer in model.layers])
    if problems:
        raise ExportError(
            f"{model.name!r} converted, but the .tflite would not run on the device:\n- "
            + "\n- ".join(problems)
        )
    return flatbuffer


def _conversion_error(model, error: Exception) -> str:
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()]
    detail = "\n".join(lines[:8]) if lines else text[:2000]
    layers = [layer.name for layer in model.layers if layer.name in text]
    where = f" It mentions layer(s) {layers}." if layers else ""
    return (
        f"Larq Compute Engine could not convert {model.name!r} ({type(error).__name__}).{where} "
        f"Converter says:\n{detail}\nFix: replace layers that TFLite/LCE do not support with "
        "plain Keras/Larq layers; nothing was written."
    )
