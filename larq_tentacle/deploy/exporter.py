"""Export to a verified Larq Compute Engine `.tflite`, with a sidecar that says how to use it.

`lce.convert_keras_model` never complains when a binary model converts badly: it
keeps float ops, writes float activations, or emits an op the device runtime
does not have. `export` therefore converts, then proves the result before it
writes anything:

1. parity: the LCE interpreter and Keras on the same real and random inputs
   (max |Δ| within `atol`, top-1 agreement reported). A BNN output jumps when
   a binary activation sits at float-rounding distance from zero, where TF and
   TFLite may round to different signs; such inputs are counted as *sign ties*
   (found in Keras, see `verify`) and reported, not hidden;
2. an op census of the flatbuffer (`larq_tentacle.census`) and, with
   `strict=True`, the check that every tentacle conv is an `LceBconv2d` with its
   BatchNorm folded and no extra `LceQuantize`;
3. the `.tflite` and its sidecar `<path>.json` (versions, model, tentacles,
   input shape, preprocessing, class names, sizes, census, kernel requirement)
   are written atomically, together, only when all checks pass.

The LCE interpreter on x86 runs reference kernels: it proves correctness, it
says nothing about speed on ARM (see docs/deploy.md).
"""

import dataclasses
import json
import os
import warnings
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from larq_tentacle.utils import atomic
from larq_tentacle.deploy import census
from larq_tentacle.utils import validation

TARGETS = ("arm", "xcore")
TENSOR_NAMES = ("compact", "converter")
SIDECAR_FORMAT = 1
DEFAULT_ATOL = 1e-3
# Relative to the layer's RMS. Measured: a flip at 2.2e-6·RMS (ResNet9 n=3, stage 5, where the
# folded BatchNorm cancels terms ~100x larger than the result) is float rounding too.
DEFAULT_TIE_EPS = 1e-5
_PREPROCESSING_KEYS = ("input_shape", "pixel_scale", "mean", "std")


class ExportError(ValueError):
    """The model cannot be converted to a usable LCE `.tflite` (nothing was written)."""


class VerificationError(ValueError):
    """The `.tflite` disagrees with Keras or fails the strict op checks; `.report` has the details."""

    def __init__(self, message: str, report: "VerifyReport"):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class VerifyReport:
    """What `verify` found. `passed` is True when parity and (if strict) the op checks hold."""

    passed: bool
    max_abs_diff: float  # over every input whose difference is not a sign tie (the parity number)
    max_abs_diff_all: float  # over every input, sign ties included
    sign_ties: int  # inputs off by more than atol only because a binary input was ~0 (see verify)
    max_abs_diff_sample: Optional[float]  # real-valued sample only (None if none given)
    max_abs_diff_random: Optional[float]
    top1_agreement: float
    samples: int
    random_samples: int
    atol: float
    kernel: str  # "default" or "indirect_bgemm"
    strict: bool
    violations: List[str]
    census: dict
    tflite_bytes: int
    paper_size_kb: Optional[int]
    size_ratio: Optional[float]  # .tflite kB / paper kB

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        lines = [
            f"verification: {'PASSED' if self.passed else 'FAILED'}",
            f"  parity: max |Δ| = {self.max_abs_diff:.3g} (atol {self.atol:g}; real-valued "
            f"{_fmt(self.max_abs_diff_sample)}, random {_fmt(self.max_abs_diff_random)}) over "
            f"{self.samples} real + {self.random_samples} random inputs; top-1 agreement "
            f"{100 * self.top1_agreement:.1f} %; bconv kernel {self.kernel}"
            + (f"; {self.sign_ties} sign tie(s), max |Δ| with them {self.max_abs_diff_all:.3g}" if self.sign_ties else ""),
            f"  size: {self.tflite_bytes / 1024:.1f} kB .tflite vs paper {self.paper_size_kb} kB "
            f"(ratio {_fmt(self.size_ratio)})",
            "  " + census.census_markdown(self.census).replace("\n", "\n  "),
        ]
        for problem in self.violations:
            lines.append(f"  strict: {problem}")
        return "\n".join(lines)


@dataclasses.dataclass
class ExportResult:
    path: str
    sidecar_path: str
    sidecar: dict
    report: Optional[VerifyReport]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def sidecar_path(path) -> str:
    """Where the sidecar of a `.tflite` lives: `<path>.json`."""
    return os.fspath(path) + ".json"


def read_sidecar(path) -> dict:
    """Load the sidecar of `path` (a `.tflite` or the `.json` itself)."""
    path = os.fspath(path)
    json_path = path if path.endswith(".json") else sidecar_path(path)
    if not os.path.isfile(json_path):
        raise FileNotFoundError(
            f"No sidecar at {json_path!r}. Fix: export with lt.export / apps/export.py, which "
            "writes <model>.tflite.json next to the model, and copy both files."
        )
    with open(json_path, encoding="utf-8") as file:
        return json.load(file)


# ---------------------------------------------------------------------------
# Input checks


def _check_model(model) -> tf.keras.Model:
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
        if getattr(layer, "dtype_policy", None) is not None and layer.dtype_policy.name != "float32"
    ]
    if mixed:
        raise ExportError(
            f"{model.name!r} uses mixed precision in {mixed[:5]}; the TFLite converter cannot "
            "convert float16 layers. Fix: rebuild the model under "
            "tf.keras.mixed_precision.set_global_policy('float32') and copy the weights "
            "(model32.set_weights(model.get_weights()))."
        )
    return model


def _input_shape(model: tf.keras.Model) -> tuple:
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
        channels = x.shape[-1] if x.ndim >= 3 else None
        hint = ""
        if x.ndim == 4 and channels != shape[2]:
            hint = f" The images have {channels} channels, the model takes {shape[2]}."
        elif x.ndim == 4:
            hint = f" The images are {x.shape[1]}x{x.shape[2]}, the model takes {shape[0]}x{shape[1]}."
        raise ValueError(
            f"`{name}` has shape {x.shape}; the model takes a batch of shape (N, {', '.join(map(str, shape))})."
            f"{hint} Fix: resize/convert the images to {shape} before preprocessing."
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty. Fix: pass at least one image.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` contains NaN or infinite values. Fix: check the preprocessing.")
    return x.astype(np.float32, copy=False)


def _check_preprocessing(preprocessing, input_shape) -> object:
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


def _check_class_names(class_names, preprocessing, num_outputs) -> Optional[list]:
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


def _needs_indirect_bgemm(model: tf.keras.Model) -> bool:
    """Grouped binary convs (fused tentacles) only run with LCE's indirect BGEMM kernel."""
    return any(
        census.is_binary_conv(layer) and getattr(layer, "groups", 1) > 1 for layer in model.layers
    )


# ---------------------------------------------------------------------------
# Conversion


def convert(model: tf.keras.Model, *, target: str = "arm") -> bytes:
    """LCE conversion with errors that name the problem (no file is written)."""
    import larq_compute_engine as lce

    target = validation.choice("target", target, TARGETS)
    model = _check_model(model)
    _input_shape(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            flatbuffer = lce.convert_keras_model(model, target=target)
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
    graph = census.read_flatbuffer(flatbuffer, what="the converter's output")
    problems = census.unsupported_op_problems(graph, [layer.name for layer in model.layers])
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


# ---------------------------------------------------------------------------
# Verification


def lce_interpreter(flatbuffer: bytes, *, use_indirect_bgemm: bool, num_threads: int = 1):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    try:
        return Interpreter(flatbuffer, num_threads=num_threads, use_indirect_bgemm=use_indirect_bgemm)
    except Exception as error:  # the C++ wrapper raises RuntimeError/ValueError
        message = str(error)
        hint = ""
        if "Grouped binary convolutions are not supported" in message:
            hint = " Fix: the model has grouped binary convs; pass use_indirect_bgemm=True."
        raise census.TFLiteFileError(
            f"The LCE interpreter cannot load the .tflite: {message.strip()[:1000]}{hint}"
        ) from error


def _keras_outputs(model, x: np.ndarray) -> np.ndarray:
    outputs = [np.asarray(model(x[i : i + 32], training=False)) for i in range(0, len(x), 32)]
    return np.concatenate(outputs)


def verify(
    model,
    tflite_path_or_bytes,
    x_sample=None,
    *,
    use_indirect_bgemm: bool = False,
    atol: float = DEFAULT_ATOL,
    random_samples: int = 8,
    seed: int = 0,
    strict: bool = True,
    target: str = "arm",
    check: bool = True,
    tie_eps: float = DEFAULT_TIE_EPS,
) -> VerifyReport:
    """Compare a `.tflite` with its Keras model and census its ops.

    !!! example
        ```python
        report = lt.verify(model, "nin5.tflite", x_test[:64])
        print(report.summary())
        ```

    # Arguments
        model: the Keras model the file was converted from.
        tflite_path_or_bytes: the `.tflite` path or its bytes.
        x_sample: real preprocessed images (N, H, W, C) float32, or None for random inputs only.
        use_indirect_bgemm: run LCE's indirect BGEMM bconv kernel (required for
            grouped binary convs, i.e. fused tentacles).
        atol: the largest allowed |tflite - keras| on any output.
        random_samples: extra standard-normal inputs (0 to skip).
        strict: also fail on the op checks of `census.strict_violations`.
        target: the converter target the file was made for ("arm" or "xcore").
        check: raise `VerificationError` when the checks fail (else just report).
        tie_eps: an input whose outputs differ by more than `atol` is a *sign tie*,
            not a conversion error, when some binary activation of it is within
            `tie_eps` (relative to its layer's RMS) of zero in Keras: float
            rounding differs between TF and TFLite (BatchNorm is folded), so
            sign() may flip there, and one flipped bit near the output moves the
            probabilities visibly. Sign ties are counted and left out of max |Δ|;
            more than a quarter of the inputs fails.

    # Returns
        A `VerifyReport`.
    """
    model = _check_model(model)
    target = validation.choice("target", target, TARGETS)
    random_samples = validation.positive_int("random_samples", random_samples, minimum=0)
    if not (isinstance(atol, (int, float)) and atol > 0):
        raise ValueError(f"Expected `atol` to be a positive number, got {atol!r}.")
    shape = _input_shape(model)
    sample = None if x_sample is None else check_images(x_sample, shape)
    if sample is None and random_samples == 0:
        raise ValueError("verify needs inputs: pass x_sample or random_samples >= 1.")
    flatbuffer = census.as_bytes(tflite_path_or_bytes)
    graph = census.read_flatbuffer(flatbuffer)
    interpreter = lce_interpreter(flatbuffer, use_indirect_bgemm=use_indirect_bgemm)
    tflite_shape = tuple(interpreter.input_shapes[0][1:])
    if tflite_shape != shape:
        raise ValueError(
            f"The .tflite takes inputs of shape {tflite_shape} but the model takes {shape}: they "
            "are not the same model. Fix: pass the model the file was exported from."
        )

    diffs, all_diffs, agree, total, ties = {}, {}, 0, 0, 0
    rng = np.random.default_rng(seed)
    batches = {"sample": sample}
    if random_samples:
        batches["random"] = rng.standard_normal((random_samples,) + shape).astype(np.float32)
    for kind, x in batches.items():
        if x is None:
            continue
        expected = _keras_outputs(model, x)
        got = np.asarray(interpreter.predict(x)).reshape(expected.shape)
        per_sample = np.abs(got - expected).reshape(len(x), -1).max(-1)
        tie = np.zeros(len(x), bool)
        if np.any(per_sample > atol):
            tie[per_sample > atol] = _sign_ties(model, x[per_sample > atol], tie_eps)
        ties += int(tie.sum())
        all_diffs[kind] = float(per_sample.max())
        diffs[kind] = float(per_sample[~tie].max()) if np.any(~tie) else 0.0
        agree += int(np.sum(np.argmax(got.reshape(len(x), -1), -1) == np.argmax(expected.reshape(len(x), -1), -1)))
        total += len(x)

    violations = census.unsupported_op_problems(graph, [layer.name for layer in model.layers])
    if strict:
        violations += census.strict_violations(model, graph, target=target)
    max_diff = max(diffs.values())
    too_many_ties = ties > max(1, total // 4)
    paper_kb = _paper_size_kb(model)
    report = VerifyReport(
        passed=max_diff <= atol and not too_many_ties and not violations,
        max_abs_diff=max_diff,
        max_abs_diff_all=max(all_diffs.values()),
        sign_ties=ties,
        max_abs_diff_sample=diffs.get("sample"),
        max_abs_diff_random=diffs.get("random"),
        top1_agreement=agree / total,
        samples=0 if sample is None else len(sample),
        random_samples=random_samples,
        atol=float(atol),
        kernel="indirect_bgemm" if use_indirect_bgemm else "default",
        strict=strict,
        violations=violations,
        census=census.op_census(flatbuffer),
        tflite_bytes=len(flatbuffer),
        paper_size_kb=paper_kb,
        size_ratio=None if not paper_kb else len(flatbuffer) / 1024 / paper_kb,
    )
    if check and not report.passed:
        reasons = []
        if max_diff > atol:
            reasons.append(f"max |tflite - keras| = {max_diff:.3g} > atol {atol:g}")
        if too_many_ties:
            reasons.append(
                f"{ties} of {total} inputs differ only through binary activations within {tie_eps:g} "
                "of zero: too many to call it float rounding. An untrained model does this (its "
                "BatchNorm still has the initial statistics, so binary dot products hit exactly 0); "
                "train it first, or pass verify=False to export it unchecked."
            )
        reasons += violations
        raise VerificationError(
            f"The .tflite of {model.name!r} failed verification:\n- " + "\n- ".join(reasons), report
        )
    return report


def _sign_ties(model, x: np.ndarray, tie_eps: float) -> np.ndarray:
    """Per input: does any binary conv see a value within tie_eps·RMS of zero (in Keras)?"""
    binary = [layer for layer in model.layers if census.is_binary_conv(layer)]
    if not binary:
        return np.zeros(len(x), bool)
    try:
        probe = tf.keras.Model(model.inputs, [layer.input for layer in binary])
    except (AttributeError, ValueError):  # a layer called twice or a subclassed model: no probe
        return np.zeros(len(x), bool)
    values = probe(x, training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    tie = np.zeros(len(x), bool)
    for value in values:
        value = np.asarray(value).reshape(len(x), -1)
        rms = np.sqrt(np.mean(value**2, axis=1, keepdims=True))
        tie |= np.any(np.abs(value) <= tie_eps * np.maximum(rms, 1e-12), axis=1)
    return tie


def _paper_size_kb(model) -> Optional[int]:
    from larq_tentacle.core.size import paper_size_kb

    try:
        return int(paper_size_kb(model))
    except Exception:  # a model outside our conv/dense vocabulary: size unknown, not an error
        return None


# ---------------------------------------------------------------------------
# Export


def export(
    model,
    path,
    *,
    fused: bool = False,
    verify: bool = True,
    sample=None,
    target: str = "arm",
    preprocessing=None,
    class_names: Optional[Sequence[str]] = None,
    strict: bool = True,
    atol: float = DEFAULT_ATOL,
    random_samples: int = 8,
    model_name: Optional[str] = None,
    source: Optional[str] = None,
    tensor_names: str = "compact",
) -> ExportResult:
    """Convert `model` with Larq Compute Engine, verify it, write `path` and `<path>.json`.

    !!! example
        ```python
        result = lt.export(model, "nin5.tflite", sample=x_test[:64],
                           preprocessing="runs/nin5/preprocessing.json")
        print(result.report.summary())
        ```

    # Arguments
        model: a `tf.keras.Model` or the path of a saved one.
        path: the `.tflite` to write; the sidecar goes to `<path>.json`.
        fused: merge the tentacles into grouped binary convs first
            (`larq_tentacle.fusion.fuse`); the file then needs LCE's indirect BGEMM
            kernel, which the sidecar records.
        verify: run `verify` (parity + op census) before writing; on failure nothing is written.
        sample: real preprocessed images for the parity check (random inputs are always added).
        target: LCE converter target, "arm" (Raspberry Pi, Android; default) or
            "xcore". int8 input/output and `experimental_default_int8_range` are not
            offered: without quantization statistics LCE ignores int8 I/O or
            produces wrong outputs (lce-notes §3).
        preprocessing: the training run's preprocessing (dict or preprocessing.json
            path), or None/"none" when the model takes already-normalized inputs.
        class_names: label names (default: from `preprocessing`).
        strict: fail when a tentacle conv is not an LceBconv2d, a BatchNorm was not
            folded, or there are more LceQuantize ops than the topology needs.
        atol: parity tolerance on the outputs.
        model_name: the name stored in the sidecar (default: the Keras model's name).
        source: where the model came from (e.g. a workdir), stored in the sidecar.
        tensor_names: "compact" (default) names each op's output after its Keras
            layer (`t3_conv2`) and drops the names of constants
            (`census.compact_tensor_names`): 0.2-1.3 % smaller, and profiles and the
            strict checks still see which tentacle an op is in. "converter" keeps the
            converter's long TF-graph names. The file that is verified is the one written.

    # Returns
        An `ExportResult` (path, sidecar_path, sidecar dict, verification report).

    # Raises
        ExportError: the model cannot become a runnable LCE file (mixed precision,
            an op no runtime has, a binary layer LCE keeps in float under strict).
        VerificationError: the file disagrees with Keras or fails the strict checks.
    """
    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(path, str) or not path.endswith(".tflite"):
        raise ValueError(f"Expected `path` to be a file name ending in .tflite, got {path!r}.")
    target = validation.choice("target", target, TARGETS)
    tensor_names = validation.choice("tensor_names", tensor_names, TENSOR_NAMES)
    model = _check_model(model)
    original = model
    shape = _input_shape(model)
    preprocessing = _check_preprocessing(preprocessing, shape)
    num_outputs = int(np.prod(model.output_shape[1:]))
    class_names = _check_class_names(class_names, preprocessing, num_outputs)
    sample = None if sample is None else check_images(sample, shape, name="sample")
    if strict:
        needs = census.topology_needs(model)
        if needs.float_binary_weight_layers:
            raise ExportError(
                "strict export refuses binary layers that LCE stores as float32: "
                f"{needs.float_binary_weight_layers}. LCE has no binary dense op, and a binary "
                "kernel needs a binary input. Fix: use 1x1 QuantConv2D(input_quantizer='ste_sign'), "
                "or pass strict=False to export them as float (the size report will show it)."
            )
    if fused:
        try:
            from larq_tentacle.core import fusion
        except ModuleNotFoundError as error:
            raise NotImplementedError(
                "export(fused=True) needs larq_tentacle.fusion (tentacle fusion into grouped "
                "binary convs), which is not installed in this version. Fix: export unfused "
                "(fused=False); the result is numerically the same."
            ) from error
        model = fusion.fuse(model)
    indirect = fused or _needs_indirect_bgemm(model)

    flatbuffer = convert(model, target=target)
    converter_bytes = len(flatbuffer)
    if tensor_names == "compact":
        flatbuffer = census.compact_tensor_names(flatbuffer, [layer.name for layer in model.layers])
    report = None
    if verify:
        report = _verify_impl(
            model,
            flatbuffer,
            sample,
            use_indirect_bgemm=indirect,
            atol=atol,
            random_samples=random_samples,
            strict=strict,
            target=target,
        )
    elif strict:
        # Without parity the op checks still cost nothing and catch a float tentacle.
        problems = census.strict_violations(model, flatbuffer, target=target)
        if problems:
            raise ExportError(f"The .tflite of {model.name!r} fails the strict op checks:\n- " + "\n- ".join(problems))
    sidecar = _sidecar(
        original, model, flatbuffer, preprocessing, class_names, report, target, fused, indirect, model_name, source,
        tensor_names={"mode": tensor_names, "converter_tflite_bytes": converter_bytes},
    )
    json_path = sidecar_path(path)
    with atomic.atomic_path(path) as tflite_tmp, atomic.atomic_path(json_path) as json_tmp:
        # Both land together: the sidecar is renamed first, then the model.
        with open(tflite_tmp, "wb") as file:
            file.write(flatbuffer)
        atomic.write_json(json_tmp, sidecar)
    return ExportResult(path=path, sidecar_path=json_path, sidecar=sidecar, report=report)


_verify_impl = verify

WORKDIR_MODELS = ("best_model.h5", "last_model.h5")


def export_workdir(
    workdir,
    *,
    output=None,
    sample="auto",
    num_samples: int = 64,
    data_dir=None,
    **export_options,
) -> ExportResult:
    """Export the best model of a training workdir (issue-3 layout) with its preprocessing.

    # Arguments
        workdir: a folder written by `lt.train` (best_model.h5 or last_model.h5,
            preprocessing.json, config.json).
        output: the `.tflite` to write (default `<workdir>/<workdir name>.tflite`).
        sample: preprocessed images for the parity check, "auto" (the first
            `num_samples` test images of the run's dataset, if it loads here; else
            random inputs only) or None (random inputs only).
        data_dir: where the dataset lives (default: the run's config.json).
        **export_options: passed to `export` (fused, strict, target, atol, ...).
    """
    workdir = os.fspath(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"No workdir at {workdir!r}. Fix: pass the --workdir of a training run.")
    models = [os.path.join(workdir, name) for name in WORKDIR_MODELS if os.path.isfile(os.path.join(workdir, name))]
    if not models:
        raise FileNotFoundError(
            f"{workdir!r} has none of {list(WORKDIR_MODELS)}: training has not saved a model yet. "
            "Fix: let apps/train.py finish at least one epoch, or pass a saved model instead."
        )
    config = _read_json(os.path.join(workdir, "config.json")) or {}
    preprocessing_file = os.path.join(workdir, "preprocessing.json")
    preprocessing = _read_json(preprocessing_file) if os.path.isfile(preprocessing_file) else None
    from larq_tentacle.core.serialization import load_model

    model = load_model(models[0], compile=False)
    name = os.path.basename(os.path.normpath(os.path.abspath(workdir)))
    output = os.fspath(output) if output is not None else os.path.join(workdir, f"{name}.tflite")
    if isinstance(sample, str) and sample == "auto":
        sample = _workdir_sample(preprocessing, num_samples, data_dir or config.get("data_dir"))
    elif isinstance(sample, (str, os.PathLike)):
        sample = np.load(os.fspath(sample), allow_pickle=False)
    export_options.setdefault("model_name", _run_name(config, model))
    export_options.setdefault("source", os.path.abspath(models[0]))
    return export(model, output, sample=sample, preprocessing=preprocessing, **export_options)


def _read_json(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _run_name(config: dict, model) -> str:
    if config.get("model"):
        precision = config.get("precision", "binary")
        if precision == "float":
            return f"{config['model']}_fp32"
        return f"{config['model']}_tentacles{config.get('tentacles', 1)}"
    return model.name


def _workdir_sample(preprocessing, num_samples: int, data_dir):
    """The run's first test images, or None (random inputs only) when the data is not here."""
    num_samples = validation.positive_int("num_samples", num_samples)
    if not isinstance(preprocessing, dict) or not preprocessing.get("dataset"):
        return None
    try:
        from larq_tentacle.data import datasets as data

        raw = data.load_raw(preprocessing["dataset"], data_dir=data_dir)
        # The run's own normalization, not one recomputed here.
        return data.preprocess_images(raw.x_test[:num_samples], preprocessing)
    except Exception as error:  # offline, dataset not downloaded: random inputs still verify
        warnings.warn(
            f"Could not load {preprocessing['dataset']!r} for the parity check ({error}); "
            "verifying on random inputs only.",
            stacklevel=3,
        )
        return None


def _tentacles(model):
    """(tentacles, head variant) of a branched or fused TentacleNet, (None, None) otherwise."""
    from larq_tentacle.core.layout import layout

    try:
        structure = layout(model)
        return structure.tentacles, structure.head_variant
    except ValueError:
        pass
    try:
        from larq_tentacle.core import fusion

        if fusion.is_fused(model):
            return fusion.fused_tentacles(model), None
    except (ImportError, ValueError):
        pass
    return None, None  # not a TentacleNet (e.g. an FP32 baseline): still exportable


def _sidecar(
    original, model, flatbuffer, preprocessing, class_names, report, target, fused, indirect, model_name, source,
    *, tensor_names: dict,
) -> dict:
    from larq_tentacle.utils.versions import versions

    tentacles, head_variant = _tentacles(original)
    paper_kb = _paper_size_kb(original)
    return {
        "format": SIDECAR_FORMAT,
        "model": model_name or original.name,
        "keras_name": original.name,
        "source": source,
        "tentacles": tentacles,
        "head_variant": head_variant,
        "input_shape": list(_input_shape(model)),
        "input_dtype": "float32",
        "output_shape": list(model.output_shape[1:]),
        "preprocessing": preprocessing,
        "class_names": class_names,
        "paper_size_kb": paper_kb,
        "tflite_bytes": len(flatbuffer),
        "size_ratio": None if not paper_kb else len(flatbuffer) / 1024 / paper_kb,
        "target": target,
        "fused": bool(fused),
        "kernel": {
            "use_indirect_bgemm": bool(indirect),
            "why": (
                "grouped binary convs: LCE's default bconv kernel rejects them; run with "
                "use_indirect_bgemm=True / lce_benchmark_model --use_indirect_bgemm=true"
            )
            if indirect
            else "any LCE bconv kernel",
        },
        "tensor_names": tensor_names,
        "census": report.census if report is not None else census.op_census(flatbuffer),
        "verification": None if report is None else {k: v for k, v in report.to_dict().items() if k != "census"},
        "versions": versions(),
    }


__all__ = [
    "ExportError",
    "ExportResult",
    "VerificationError",
    "VerifyReport",
    "check_images",
    "convert",
    "export",
    "export_workdir",
    "read_sidecar",
    "sidecar_path",
    "verify",
]
