"""The int8 export: calibration checks, conversion, the written file's types, int8 parity.

`core.int8.int8_model` gives the float parts of a model int8 ranges; LCE then
writes them as int8 ops next to its binary ones. The converter does not say when
it keeps something float (without ranges `inference_input_type=tf.int8` silently
returns a float model, lce-notes §4), so `int8_problems` reads every tensor type
of the written flatbuffer, and `verify_int8` compares the file with the
fake-quantized Keras model: top-1 agreement >= `MIN_INT8_AGREEMENT` (one
disagreement is always allowed) and max |Δ| within `DEFAULT_INT8_STEPS` output
quantization steps.
"""

from typing import List, Optional

import numpy as np

from larq_tentacle.deploy import census, rules
from larq_tentacle.deploy.conversion import ExportError, check_images, convert
from larq_tentacle.deploy.options import (
    DEFAULT_INT8_STEPS,
    DEFAULT_RANDOM_SAMPLES,
    MIN_CALIBRATION_SAMPLES,
    MIN_INT8_AGREEMENT,
)
from larq_tentacle.deploy.tflite_file import (
    FlatbufferGraph,
    compact_tensor_names,
    layer_of,
    read_flatbuffer,
)
from larq_tentacle.deploy.verification import (
    VerificationError,
    VerifyReport,
    lce_interpreter,
    paper_size_kb_or_none,
)

_WEIGHT_OPS = {"CONV_2D": "per-channel", "DEPTHWISE_CONV_2D": "per-channel",
               "FULLY_CONNECTED": "per-tensor"}
# Ops that turn the float input into int8 and the int8 output back into float.
_IO_OPS = ("QUANTIZE", "DEQUANTIZE")


def check_calibration(x, input_shape) -> np.ndarray:
    """`x` as float32 calibration images, or one clear error."""
    if x is None:
        raise ValueError(
            "quantize='int8' needs calibration_data: preprocessed float32 training images "
            f"(N >= {MIN_CALIBRATION_SAMPLES}, shape (N, {', '.join(map(str, input_shape))})). "
            "Fix: pass e.g. calibration_data=bundle.arrays.x_train[:512]."
        )
    x = check_images(x, input_shape, name="calibration_data")
    if len(x) < MIN_CALIBRATION_SAMPLES:
        raise ValueError(
            f"`calibration_data` has {len(x)} images; int8 ranges need at least "
            f"{MIN_CALIBRATION_SAMPLES} (a few hundred is better). Fix: pass more training images."
        )
    return x


def int8_problems(graph: FlatbufferGraph, *, int8_io: bool, layer_names=()) -> List[str]:
    """Everything in the file that should be int8 and is not (an empty list: all int8)."""
    problems = []
    io = set(graph.inputs) | set(graph.outputs)
    names = set(layer_names)
    for op in graph.operators:
        where = f"op {op.index} {op.op}" + (
            f" (layer {layer_of(op, names)!r})" if layer_of(op, names) else ""
        )
        for index in [i for i in op.inputs + op.outputs if i >= 0]:
            tensor = graph.tensors[index]
            boundary = op.op in _IO_OPS and index in io and not int8_io
            if tensor.type == "FLOAT32" and tensor.nbytes == 0 and not boundary:
                problems.append(f"{where} has the float32 tensor {tensor.name!r}")
                break
        if op.op in _WEIGHT_OPS and len(op.inputs) > 1:
            problems += _weight_problems(graph, op, where)
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        types = [graph.tensors[i].type for i in indices]
        if int8_io and types != ["INT8"]:
            problems.append(f"the model's {kind} is {types}, not int8 (int8_io=True)")
    return problems


def _weight_problems(graph: FlatbufferGraph, op, where: str) -> List[str]:
    weights = graph.tensors[op.inputs[1]]
    if weights.type != "INT8":
        return [f"{where} has {weights.type} weights, not int8"]
    channels = weights.shape[3] if op.op == "DEPTHWISE_CONV_2D" else weights.shape[0]
    wanted = channels if _WEIGHT_OPS[op.op] == "per-channel" else 1
    if len(weights.scales) != wanted:
        return [
            f"{where} has {len(weights.scales)} weight scales, expected {wanted} "
            f"({_WEIGHT_OPS[op.op]})"
        ]
    return []


def io_quantization(graph: FlatbufferGraph) -> dict:
    """{"input"/"output": {dtype, scale, zero_point}}: the int8 side of each boundary.

    With float input/output the scale and zero point are those of the int8 tensor
    right after the input's QUANTIZE (before the output's DEQUANTIZE).
    """
    def entry(index, neighbour):
        tensor = graph.tensors[index]
        quantized = tensor if tensor.scales else graph.tensors[neighbour(index)]
        return {
            "dtype": tensor.type.lower(),
            "scale": quantized.scales[0] if quantized.scales else None,
            "zero_point": quantized.zero_points[0] if quantized.zero_points else None,
        }

    def after_input(index):
        return next((op.outputs[0] for op in graph.operators if index in op.inputs), index)

    def before_output(index):
        return next((op.inputs[0] for op in graph.operators if index in op.outputs), index)

    return {"input": entry(graph.inputs[0], after_input),
            "output": entry(graph.outputs[0], before_output)}


def quantize_input(x: np.ndarray, io: dict) -> np.ndarray:
    """Float images -> the file's int8 input (a no-op for float input)."""
    if io["input"]["dtype"] != "int8":
        return x
    scale, zero = io["input"]["scale"], io["input"]["zero_point"]
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def dequantize_output(y: np.ndarray, io: dict) -> np.ndarray:
    if io["output"]["dtype"] != "int8":
        return np.asarray(y, np.float32)
    scale, zero = io["output"]["scale"], io["output"]["zero_point"]
    return (np.asarray(y, np.float32) - zero) * scale


def convert_int8(model, reference, *, target: str, int8_io: bool, tensor_names: str):
    """(the int8 flatbuffer, its sidecar tensor_names entry); an ExportError if not int8."""
    flatbuffer = convert(model, target=target, int8_io=int8_io)
    names_entry = {"mode": tensor_names, "converter_tflite_bytes": len(flatbuffer)}
    layer_names = [layer.name for layer in model.layers]
    if tensor_names == "compact":
        flatbuffer = compact_tensor_names(flatbuffer, layer_names)
    problems = int8_problems(read_flatbuffer(flatbuffer), int8_io=int8_io, layer_names=layer_names)
    if problems:
        raise ExportError(
            f"The int8 .tflite of {reference.name!r} is not int8 where it should be:\n- "
            + "\n- ".join(problems[:12])
            + "\nFix: this layer type has no int8 range in larq_tentacle.core.int8 yet; export "
            "without quantize='int8', or replace the layer with Conv2D/Dense/BatchNorm/ReLU."
        )
    return flatbuffer, names_entry


def verify_int8(
    model, reference, flatbuffer: bytes, x_sample=None, *, use_indirect_bgemm: bool = False,
    random_samples: int = DEFAULT_RANDOM_SAMPLES, strict: bool = True, target: str = "arm",
    max_steps: float = DEFAULT_INT8_STEPS, seed: int = 0, check: bool = True,
) -> VerifyReport:
    """Compare an int8 file with its fake-quantized Keras `model` (`reference`: before int8).

    Passes when the top-1 class agrees on >= 99 % of the inputs, or all but one
    (an input whose Keras top two are within the tolerance agrees with either;
    on the usual 64 + 8 inputs 99 % would allow no int8 flip at all), max |Δ| is at
    most `max_steps` output quantization steps (`report.atol`) on all but a
    quarter of the inputs, the file is int8 where it should be and, with
    `strict`, the binary op rules of `rules.strict_violations` hold for `reference`.

    Why not every input: the file rounds in integers where Keras rounds a float
    sum, so an int8 value can land one step off; in front of a binary conv, one
    step across zero flips a sign, and one flipped bit moves the output by many
    steps (measured: 4 of 72 inputs of a ResNet9 n=2, the others within 1.5 steps).
    Those inputs are counted in `report.sign_ties` and left out of
    `max_abs_diff` (`max_abs_diff_all` has them), as the float export does
    with its sign ties.
    """
    graph = read_flatbuffer(flatbuffer)
    io = io_quantization(graph)
    step = io["output"]["scale"]
    atol = float(max_steps * step)
    shape = tuple(model.input_shape[1:])
    batches = {"sample": None if x_sample is None else check_images(x_sample, shape)}
    if random_samples:
        rng = np.random.default_rng(seed)
        batches["random"] = rng.standard_normal((random_samples,) + shape).astype(np.float32)
    interpreter = lce_interpreter(flatbuffer, use_indirect_bgemm=use_indirect_bgemm)
    diffs, all_diffs, agree, total, flips = {}, {}, 0, 0, 0
    for kind, x in batches.items():
        if x is None:
            continue
        expected = np.asarray(model.predict(x, batch_size=32, verbose=0)).reshape(len(x), -1)
        got = dequantize_output(interpreter.predict(quantize_input(x, io)), io)
        got = got.reshape(len(x), -1)
        per_input = np.abs(got - expected).max(-1)
        flipped = per_input > atol
        flips += int(flipped.sum())
        all_diffs[kind] = float(per_input.max())
        diffs[kind] = float(per_input[~flipped].max()) if np.any(~flipped) else 0.0
        picked = expected[np.arange(len(x)), got.argmax(-1)]
        agree += int(np.sum(picked >= expected.max(-1) - atol))
        total += len(x)
    layer_names = [layer.name for layer in model.layers]
    violations = int8_problems(graph, int8_io=io["input"]["dtype"] == "int8",
                               layer_names=layer_names)
    if strict:
        violations += rules.strict_violations(reference, graph, target=target)
    report = _report(reference, flatbuffer, (diffs, all_diffs, flips), agree / total, atol,
                     violations, batches, strict=strict, indirect=use_indirect_bgemm)
    if check and not report.passed:
        raise VerificationError(_failure(reference.name, report, step, max_steps), report)
    return report


def _too_many_flips(flips: int, total: int) -> bool:
    return flips > max(1, total // 4)


def agreement_passes(agreement: float, total: int) -> bool:
    """Whether `agreement` on `total` inputs meets `MIN_INT8_AGREEMENT`, one miss always allowed."""
    misses = round((1 - agreement) * total)
    return misses <= max(1, int((1 - MIN_INT8_AGREEMENT) * total + 1e-9))


def _report(reference, flatbuffer, parity, agreement, atol, violations, batches, *, strict,
            indirect) -> VerifyReport:
    diffs, all_diffs, flips = parity
    max_diff = max(diffs.values())
    sample = batches["sample"]
    total = sum(len(x) for x in batches.values() if x is not None)
    paper_kb = paper_size_kb_or_none(reference)
    return VerifyReport(
        passed=agreement_passes(agreement, total) and not _too_many_flips(flips, total)
        and not violations,
        max_abs_diff=max_diff, max_abs_diff_all=max(all_diffs.values()), sign_ties=flips,
        max_abs_diff_sample=diffs.get("sample"), max_abs_diff_random=diffs.get("random"),
        top1_agreement=agreement, samples=0 if sample is None else len(sample),
        random_samples=0 if "random" not in batches else len(batches["random"]),
        atol=atol, kernel="indirect_bgemm" if indirect else "default", strict=strict,
        violations=violations, census=census.op_census(flatbuffer),
        tflite_bytes=len(flatbuffer), paper_size_kb=paper_kb,
        size_ratio=None if not paper_kb else len(flatbuffer) / 1024 / paper_kb,
    )


def _failure(name: str, report: VerifyReport, step: float, max_steps: float) -> str:
    reasons = []
    total = report.samples + report.random_samples
    if not agreement_passes(report.top1_agreement, total):
        reasons.append(
            f"top-1 agreement with the fake-quantized Keras model {100 * report.top1_agreement:.1f}"
            f" % of {total} inputs < {100 * MIN_INT8_AGREEMENT:.0f} % (and more than one miss)"
        )
    if _too_many_flips(report.sign_ties, total):
        reasons.append(
            f"{report.sign_ties} of {total} inputs differ by more than {max_steps:g} output "
            f"steps (step {step:.3g}; max |tflite - keras| {report.max_abs_diff_all:.3g}): more "
            "than a quarter, so not the odd binary activation flipped by int8 rounding. Fix: "
            "calibrate on more (and representative) training images, or fine-tune with "
            "--int8_epochs."
        )
    reasons += report.violations
    return f"The int8 .tflite of {name!r} failed verification:\n- " + "\n- ".join(reasons)


def quantization_entry(
    flatbuffer: bytes, *, calibration_samples: int, max_steps: float,
    report: Optional[VerifyReport],
) -> dict:
    """The sidecar's "quantization" entry: how to feed and read the int8 file."""
    io = io_quantization(read_flatbuffer(flatbuffer))
    entry = {"mode": "int8", **io, "calibration_samples": int(calibration_samples),
             "tolerance_steps": float(max_steps)}
    if report is not None and io["output"]["scale"]:
        entry["max_abs_diff_steps"] = report.max_abs_diff / io["output"]["scale"]
    return entry
