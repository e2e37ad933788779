"""Export to a verified Larq Compute Engine `.tflite`, with a sidecar that says how to use it.

`lce.convert_keras_model` never complains when a binary model converts badly: it
keeps float ops, writes float activations, or emits an op the device runtime
does not have. `export` therefore converts (`conversion`), then proves the
result before it writes anything:

1. parity: the LCE interpreter and Keras on the same real and random inputs
   (`verification.verify`; sign ties are reported, not hidden);
2. an op census of the flatbuffer (`census`) and, with `strict=True`, the check
   that every tentacle conv is an `LceBconv2d` with its BatchNorm folded and no
   extra `LceQuantize` (`rules`);
3. the `.tflite` and its sidecar `<path>.json` (`sidecar`) are written
   atomically, together, only when all checks pass.

The LCE interpreter on x86 runs reference kernels: it proves correctness, it
says nothing about speed on ARM (see docs/deploy.md).
"""

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

from larq_tentacle.deploy import rules, verification
from larq_tentacle.deploy.conversion import (
    ExportError,
    check_class_names,
    check_images,
    check_model,
    check_preprocessing,
    convert,
    fixed_input_shape,
    needs_indirect_bgemm,
)
from larq_tentacle.deploy.options import (
    DEFAULT_ATOL,
    DEFAULT_INT8_STEPS,
    DEFAULT_RANDOM_SAMPLES,
    QUANTIZE,
    TARGETS,
    TENSOR_NAMES,
)
from larq_tentacle.deploy.sidecar import build_sidecar, write_model_and_sidecar
from larq_tentacle.deploy.tflite_file import compact_tensor_names
from larq_tentacle.deploy.verification import VerifyReport
from larq_tentacle.utils import validation


@dataclasses.dataclass
class ExportResult:
    path: str
    sidecar_path: str
    sidecar: dict
    report: Optional[VerifyReport]


def export(
    model, path, *, fused: bool = False, verify: bool = True, sample=None, target: str = "arm",
    preprocessing=None, class_names: Optional[Sequence[str]] = None, strict: bool = True,
    atol: float = DEFAULT_ATOL, random_samples: int = DEFAULT_RANDOM_SAMPLES,
    model_name: Optional[str] = None, source: Optional[str] = None, tensor_names: str = "compact",
    quantize: str = "none", calibration_data=None, int8_io: bool = False,
    int8_steps: float = DEFAULT_INT8_STEPS,
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
            (`larq_tentacle.core.fusion.fuse`); the file then needs LCE's indirect BGEMM
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
            (`tflite_file.compact_tensor_names`): 0.2-1.3 % smaller, and profiles and
            the strict checks still see which tentacle an op is in. "converter" keeps
            the converter's long TF-graph names. The file that is verified is the one written.
        quantize: "int8": all that is not binary in int8, ranges from `calibration_data`
            (an int8 model, e.g. a fine-tuned `int8_model.h5`, converts as it is, unfused),
            verified by `deploy.int8.verify_int8` (`int8_steps`); `int8_io`: int8 I/O too.

    # Returns
        An `ExportResult` (path, sidecar_path, sidecar dict, verification report).

    # Raises
        ExportError: the model cannot become a runnable LCE file (mixed precision,
            an op no runtime has, a binary layer LCE keeps in float under strict).
        VerificationError: the file disagrees with Keras or fails the strict checks.
    """
    path, target, tensor_names = _checked_options(path, target, tensor_names)
    original = check_model(model)
    quantize = _checked_quantize(quantize, int8_io, calibration_data, original, fused=fused)
    preprocessing, class_names, sample = _checked_inputs(
        original, preprocessing, class_names, sample, strict=strict
    )
    model = _fuse(original) if fused else original
    indirect = fused or needs_indirect_bgemm(model)
    checks = dict(target=target, tensor_names=tensor_names, verify=verify, sample=sample,
                  use_indirect_bgemm=indirect, random_samples=random_samples, strict=strict)
    int8 = dict(calibration_data=calibration_data, int8_io=int8_io, int8_steps=int8_steps)
    flatbuffer, names_entry, report, quantization = (_int8_convert_and_check(
        model, **int8, **checks
    ) if quantize == "int8" else _convert_and_check(model, atol=atol, **checks) + (None,))
    sidecar = build_sidecar(
        original, model, flatbuffer, preprocessing=preprocessing, class_names=class_names,
        report=report, target=target, fused=fused, indirect=indirect, model_name=model_name,
        source=source, tensor_names=names_entry, quantization=quantization,
    )
    json_path = write_model_and_sidecar(path, flatbuffer, sidecar)
    return ExportResult(path=path, sidecar_path=json_path, sidecar=sidecar, report=report)


def _checked_quantize(quantize, int8_io, calibration_data, model, *, fused: bool) -> str:
    from larq_tentacle.core.int8 import is_int8_model

    quantize = validation.choice("quantize", quantize, QUANTIZE)
    if quantize == "none" and (int8_io or calibration_data is not None):
        raise ValueError(
            "int8_io and calibration_data only apply to an int8 export. Fix: pass "
            "quantize='int8' (with calibration_data), or leave them out."
        )
    if not is_int8_model(model):
        return quantize
    # An int8 model (e.g. a run's fine-tuned int8_model.h5) already has its ranges.
    problem = (
        "its ranges are set (calibrated or fine-tuned); calibrating again would undo that. "
        "Fix: leave calibration_data out" if calibration_data is not None
        else "it converts as int8 only. Fix: pass quantize='int8'" if quantize == "none"
        else "fusing would rebuild it without its ranges. Fix: export it unfused (the same "
        "numbers), or export the float model with fused=True and calibration_data" if fused
        else None
    )
    if problem:
        raise ValueError(
            f"{model.name!r} is already an int8 model (it has Int8Range layers): {problem}."
        )
    return quantize


def _tflite_path(path) -> str:
    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(path, str) or not path.endswith(".tflite"):
        raise ValueError(f"Expected `path` to be a file name ending in .tflite, got {path!r}.")
    return path


def _checked_options(path, target, tensor_names):
    return (
        _tflite_path(path),
        validation.choice("target", target, TARGETS),
        validation.choice("tensor_names", tensor_names, TENSOR_NAMES),
    )


def _checked_inputs(model, preprocessing, class_names, sample, *, strict: bool):
    """(preprocessing, class_names, sample) checked against the model's input and output."""
    if strict:
        _refuse_float_binary_layers(model)
    shape = fixed_input_shape(model)
    preprocessing = check_preprocessing(preprocessing, shape)
    num_outputs = int(np.prod(model.output_shape[1:]))
    class_names = check_class_names(class_names, preprocessing, num_outputs)
    sample = None if sample is None else check_images(sample, shape, name="sample")
    return preprocessing, class_names, sample


def _refuse_float_binary_layers(model) -> None:
    needs = rules.topology_needs(model)
    if needs.float_binary_weight_layers:
        raise ExportError(
            "strict export refuses binary layers that LCE stores as float32: "
            f"{needs.float_binary_weight_layers}. LCE has no binary dense op, and a binary "
            "kernel needs a binary input. Fix: use 1x1 QuantConv2D(input_quantizer='ste_sign'), "
            "or pass strict=False to export them as float (the size report will show it)."
        )


def _fuse(model):
    try:
        from larq_tentacle.core import fusion
    except ModuleNotFoundError as error:
        raise NotImplementedError(
            "export(fused=True) needs larq_tentacle.core.fusion (tentacle fusion into grouped "
            "binary convs), which is not installed in this version. Fix: export unfused "
            "(fused=False); the result is numerically the same."
        ) from error
    return fusion.fuse(model)


def _int8_convert_and_check(
    model, *, calibration_data, target: str, tensor_names: str, verify: bool, sample,
    use_indirect_bgemm: bool, random_samples: int, strict: bool, int8_io: bool,
    int8_steps: float,
):
    """(file, tensor_names entry, report or None, the sidecar's quantization entry)."""
    from larq_tentacle.core.int8 import int8_model, is_int8_model
    from larq_tentacle.deploy import int8

    if not (isinstance(int8_steps, (int, float)) and int8_steps > 0):
        raise ValueError(f"Expected `int8_steps` to be a positive number, got {int8_steps!r}.")
    if is_int8_model(model):  # converted as it is: its ranges were calibrated (and fine-tuned)
        quantized, calibration = model, ()
    else:
        calibration = int8.check_calibration(calibration_data, fixed_input_shape(model))
        quantized = int8_model(model, calibration)
    flatbuffer, names_entry = int8.convert_int8(
        quantized, model, target=target, int8_io=bool(int8_io), tensor_names=tensor_names
    )
    report = None
    if verify:
        report = int8.verify_int8(
            quantized, model, flatbuffer, sample, use_indirect_bgemm=use_indirect_bgemm,
            random_samples=random_samples, strict=strict, target=target, max_steps=int8_steps,
        )
    elif strict:
        problems = rules.strict_violations(model, flatbuffer, target=target)
        if problems:
            raise ExportError(
                f"The int8 .tflite of {model.name!r} fails the strict op checks:\n- "
                + "\n- ".join(problems)
            )
    entry = int8.quantization_entry(
        flatbuffer, calibration_samples=len(calibration), max_steps=int8_steps, report=report
    )
    if quantized is model:
        entry["ranges"] = "the int8 model's own (calibrated or fine-tuned before the export)"
    return flatbuffer, names_entry, report, entry


def _convert_and_check(
    model, *, target: str, tensor_names: str, verify: bool, sample, use_indirect_bgemm: bool,
    atol: float, random_samples: int, strict: bool,
):
    """(the file to write, its sidecar's tensor_names entry, the verification report or None)."""
    flatbuffer = convert(model, target=target)
    converter_bytes = len(flatbuffer)
    if tensor_names == "compact":
        flatbuffer = compact_tensor_names(flatbuffer, [layer.name for layer in model.layers])
    report = None
    if verify:
        report = verification.verify(
            model, flatbuffer, sample, use_indirect_bgemm=use_indirect_bgemm, atol=atol,
            random_samples=random_samples, strict=strict, target=target,
        )
    elif strict:
        # Without parity the op checks still cost nothing and catch a float tentacle.
        problems = rules.strict_violations(model, flatbuffer, target=target)
        if problems:
            raise ExportError(
                f"The .tflite of {model.name!r} fails the strict op checks:\n- "
                + "\n- ".join(problems)
            )
    names_entry = {"mode": tensor_names, "converter_tflite_bytes": converter_bytes}
    return flatbuffer, names_entry, report
