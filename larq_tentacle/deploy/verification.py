"""Proof that a `.tflite` computes what its Keras model computes.

`verify` runs the LCE interpreter and Keras on the same real and random inputs
(max |Δ| within `atol`, top-1 agreement reported). A BNN output jumps when a
binary activation sits at float-rounding distance from zero, where TF and
TFLite may round to different signs; such inputs are counted as *sign ties*
(found in Keras, see `_sign_ties`) and reported, not hidden. With `strict=True`
it also applies the op rules of `rules.strict_violations`. When the outputs
disagree, `localisation.first_disagreement` names the first layer where the
disagreement appears.

The LCE interpreter on x86 runs reference kernels: it proves correctness, it
says nothing about speed on ARM (see docs/deploy.md).
"""

import dataclasses
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.deploy import census, localisation, rules
from larq_tentacle.deploy.conversion import check_images, check_model, fixed_input_shape
from larq_tentacle.deploy.options import DEFAULT_ATOL, DEFAULT_RANDOM_SAMPLES, TARGETS
from larq_tentacle.deploy.tflite_file import TFLiteFileError, as_bytes, read_flatbuffer
from larq_tentacle.utils import validation

# Relative to the layer's RMS. Measured: a flip at 2.2e-6·RMS (ResNet9 n=3, stage 5, where the
# folded BatchNorm cancels terms ~100x larger than the result) is float rounding too.
DEFAULT_TIE_EPS = 1e-5
# With real inputs, sign ties are judged by what they do to the predictions: at least this
# fraction of the real inputs must keep Keras's top-1 class (issue 15).
DEFAULT_TIE_AGREEMENT = 0.95


class VerificationError(ValueError):
    """The `.tflite` disagrees with Keras or fails the strict op checks; `.report` has details."""

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
    # when the outputs disagree: the first layer whose output does (localisation.Disagreement)
    first_disagreement: Optional[dict] = None
    # real inputs only (None without them): sign ties, and the share keeping Keras's top-1
    sign_ties_sample: Optional[int] = None
    top1_agreement_sample: Optional[float] = None
    tie_agreement: float = DEFAULT_TIE_AGREEMENT

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        ties = ""
        if self.sign_ties:
            ties = f"; {self.sign_ties} sign tie(s), max |Δ| with them {self.max_abs_diff_all:.3g}"
        if self.top1_agreement_sample is not None:
            ties += f"; top-1 agreement on the real inputs {100 * self.top1_agreement_sample:.1f} %"
        lines = [
            f"verification: {'PASSED' if self.passed else 'FAILED'}",
            f"  parity: max |Δ| = {self.max_abs_diff:.3g} (atol {self.atol:g}; real-valued "
            f"{_fmt(self.max_abs_diff_sample)}, random {_fmt(self.max_abs_diff_random)}) over "
            f"{self.samples} real + {self.random_samples} random inputs; top-1 agreement "
            f"{100 * self.top1_agreement:.1f} %; bconv kernel {self.kernel}" + ties,
            f"  size: {self.tflite_bytes / 1024:.1f} kB .tflite vs paper {self.paper_size_kb} kB "
            f"(ratio {_fmt(self.size_ratio)})",
            "  " + census.census_markdown(self.census).replace("\n", "\n  "),
        ]
        if self.first_disagreement:
            lines.append("  where: " + _where(self.first_disagreement))
        for problem in self.violations:
            lines.append(f"  strict: {problem}")
        return "\n".join(lines)


@dataclasses.dataclass
class _Parity:
    """The output differences over every batch of inputs (kind -> max |Δ|)."""

    diffs: Dict[str, float] = dataclasses.field(default_factory=dict)  # sign ties left out
    all_diffs: Dict[str, float] = dataclasses.field(default_factory=dict)
    agree: int = 0
    total: int = 0
    ties: int = 0
    kind_ties: Dict[str, int] = dataclasses.field(default_factory=dict)
    kind_agreement: Dict[str, float] = dataclasses.field(default_factory=dict)


def _where(disagreement: dict) -> str:
    return localisation.Disagreement(**disagreement).describe()


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def lce_interpreter(flatbuffer: bytes, *, use_indirect_bgemm: bool, num_threads: int = 1):
    """The LCE interpreter on `flatbuffer`; a file it cannot load raises TFLiteFileError."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    try:
        return Interpreter(
            flatbuffer, num_threads=num_threads, use_indirect_bgemm=use_indirect_bgemm
        )
    except (RuntimeError, ValueError) as error:  # what the C++ wrapper raises
        message = str(error)
        hint = ""
        if "Grouped binary convolutions are not supported" in message:
            hint = " Fix: the model has grouped binary convs; pass use_indirect_bgemm=True."
        raise TFLiteFileError(
            f"The LCE interpreter cannot load the .tflite: {message.strip()[:1000]}{hint}"
        ) from error


def paper_size_kb_or_none(model) -> Optional[int]:
    """The paper's size of `model` in kB, or None when a weight's size is not known."""
    from larq_tentacle.core.size import paper_size_kb

    try:
        return int(paper_size_kb(model))
    except TypeError:  # a weight of partly unknown shape: num_elements() is None
        return None


def verify(
    model,
    tflite_path_or_bytes,
    x_sample=None,
    *,
    use_indirect_bgemm: bool = False,
    atol: float = DEFAULT_ATOL,
    random_samples: int = DEFAULT_RANDOM_SAMPLES,
    seed: int = 0,
    strict: bool = True,
    target: str = "arm",
    check: bool = True,
    tie_eps: float = DEFAULT_TIE_EPS,
    localise: bool = True,
    tie_agreement: float = DEFAULT_TIE_AGREEMENT,
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
        strict: also fail on the op checks of `rules.strict_violations`.
        target: the converter target the file was made for ("arm" or "xcore").
        check: raise `VerificationError` when the checks fail (else just report).
        tie_eps: an input whose outputs differ by more than `atol` is a *sign tie*,
            not a conversion error, when some binary activation of it is within
            `tie_eps` (relative to its layer's RMS) of zero in Keras: float
            rounding differs between TF and TFLite (BatchNorm is folded), so
            sign() may flip there, and one flipped bit near the output moves the
            probabilities visibly. Sign ties are counted and left out of max |Δ|.
            With `x_sample` they are judged by the predictions: the file must keep
            Keras's top-1 on `tie_agreement` of the real inputs; else > 1/4 ties fail.
        localise: when the outputs disagree, report the first layer whose output does
            (`localisation.first_disagreement`; a few conversions of cut models).
        tie_agreement: see `tie_eps` (default 0.95).

    # Returns
        A `VerifyReport`.
    """
    model = check_model(model)
    target, random_samples = _checked_options(target, random_samples, atol, tie_agreement)
    shape = fixed_input_shape(model)
    batches = _input_batches(x_sample, shape, random_samples, seed)
    sample = batches["sample"]
    flatbuffer = as_bytes(tflite_path_or_bytes)
    graph = read_flatbuffer(flatbuffer)
    interpreter = _interpreter_for(model, flatbuffer, shape, use_indirect_bgemm)
    parity = _parity(model, interpreter, batches, atol, tie_eps)
    violations = rules.unsupported_op_problems(graph, [layer.name for layer in model.layers])
    if strict:
        violations += rules.strict_violations(model, graph, target=target)
    report = _report(
        model, flatbuffer, parity, violations, samples=0 if sample is None else len(sample),
        random_samples=random_samples, atol=atol, strict=strict,
        kernel="indirect_bgemm" if use_indirect_bgemm else "default", tie_agreement=tie_agreement,
    )
    if localise and report.max_abs_diff > atol:
        report.first_disagreement = _first_disagreement(
            model, batches, parity, atol=atol, use_indirect_bgemm=use_indirect_bgemm,
            target=target,
        )
    if check and not report.passed:
        raise VerificationError(_failure_message(model.name, report, tie_eps), report)
    return report


def _checked_options(target, random_samples, atol, tie_agreement):
    """(target, random_samples) checked, with atol and tie_agreement."""
    target = validation.choice("target", target, TARGETS)
    random_samples = validation.positive_int("random_samples", random_samples, minimum=0)
    if not (isinstance(atol, (int, float)) and atol > 0):
        raise ValueError(f"Expected `atol` to be a positive number, got {atol!r}.")
    if not (isinstance(tie_agreement, (int, float)) and 0 <= tie_agreement <= 1):
        raise ValueError(
            f"Expected `tie_agreement` to be a fraction in [0, 1], got {tie_agreement!r}. "
            "Fix: pass e.g. tie_agreement=0.95."
        )
    return target, random_samples


def _first_disagreement(
    model, batches: dict, parity: _Parity, *, atol: float, use_indirect_bgemm: bool, target: str
) -> Optional[dict]:
    """`localisation.first_disagreement` on a few inputs of the kind that disagreed most."""
    worst = max(parity.diffs, key=parity.diffs.get)
    found = localisation.first_disagreement(
        model, batches[worst][:4], tolerance=atol, target=target,
        interpreter_factory=lambda flatbuffer: lce_interpreter(
            flatbuffer, use_indirect_bgemm=use_indirect_bgemm
        ),
    )
    return None if found is None else dataclasses.asdict(found)


def _input_batches(x_sample, shape: tuple, random_samples: int, seed: int) -> dict:
    """The parity inputs by kind: "sample" (the real images or None) and "random" if any."""
    sample = None if x_sample is None else check_images(x_sample, shape)
    if sample is None and random_samples == 0:
        raise ValueError("verify needs inputs: pass x_sample or random_samples >= 1.")
    batches = {"sample": sample}
    if random_samples:
        rng = np.random.default_rng(seed)
        batches["random"] = rng.standard_normal((random_samples,) + shape).astype(np.float32)
    return batches


def _interpreter_for(model, flatbuffer: bytes, shape: tuple, use_indirect_bgemm: bool):
    interpreter = lce_interpreter(flatbuffer, use_indirect_bgemm=use_indirect_bgemm)
    tflite_shape = tuple(interpreter.input_shapes[0][1:])
    if tflite_shape != shape:
        raise ValueError(
            f"The .tflite takes inputs of shape {tflite_shape} but the model takes {shape}: they "
            "are not the same model. Fix: pass the model the file was exported from."
        )
    return interpreter


def _keras_outputs(model, x: np.ndarray) -> np.ndarray:
    outputs = [np.asarray(model(x[i : i + 32], training=False)) for i in range(0, len(x), 32)]
    return np.concatenate(outputs)


def _parity(model, interpreter, batches: dict, atol: float, tie_eps: float) -> _Parity:
    """Run both on every batch (kind -> inputs or None); sign ties are found in Keras."""
    parity = _Parity()
    for kind, x in batches.items():
        if x is None:
            continue
        expected = _keras_outputs(model, x)
        got = np.asarray(interpreter.predict(x)).reshape(expected.shape)
        per_sample = np.abs(got - expected).reshape(len(x), -1).max(-1)
        tie = np.zeros(len(x), bool)
        if np.any(per_sample > atol):
            tie[per_sample > atol] = _sign_ties(model, x[per_sample > atol], tie_eps)
        parity.ties += int(tie.sum())
        parity.all_diffs[kind] = float(per_sample.max())
        parity.diffs[kind] = float(per_sample[~tie].max()) if np.any(~tie) else 0.0
        top1_got = np.argmax(got.reshape(len(x), -1), -1)
        top1_expected = np.argmax(expected.reshape(len(x), -1), -1)
        parity.agree += int(np.sum(top1_got == top1_expected))
        parity.total += len(x)
        parity.kind_ties[kind] = int(tie.sum())
        parity.kind_agreement[kind] = float(np.mean(top1_got == top1_expected))
    return parity


def _too_many_ties(ties: int, total: int) -> bool:
    return ties > max(1, total // 4)


def _ties_fail(report: "VerifyReport") -> bool:
    """With real inputs: ties that change Keras's top-1 on too many of them. Without: too many."""
    if report.sign_ties_sample is not None:
        return bool(report.sign_ties_sample) and report.top1_agreement_sample < (
            report.tie_agreement
        )
    return _too_many_ties(report.sign_ties, report.samples + report.random_samples)


def _report(
    model, flatbuffer: bytes, parity: _Parity, violations: List[str], *, samples: int,
    random_samples: int, atol: float, strict: bool, kernel: str, tie_agreement: float,
) -> VerifyReport:
    max_diff = max(parity.diffs.values())
    paper_kb = paper_size_kb_or_none(model)
    report = VerifyReport(
        passed=False,
        max_abs_diff=max_diff,
        max_abs_diff_all=max(parity.all_diffs.values()),
        sign_ties=parity.ties,
        max_abs_diff_sample=parity.diffs.get("sample"),
        max_abs_diff_random=parity.diffs.get("random"),
        top1_agreement=parity.agree / parity.total,
        samples=samples,
        random_samples=random_samples,
        atol=float(atol),
        kernel=kernel,
        strict=strict,
        violations=violations,
        census=census.op_census(flatbuffer),
        tflite_bytes=len(flatbuffer),
        paper_size_kb=paper_kb,
        size_ratio=None if not paper_kb else len(flatbuffer) / 1024 / paper_kb,
        sign_ties_sample=parity.kind_ties.get("sample"),
        top1_agreement_sample=parity.kind_agreement.get("sample"),
        tie_agreement=tie_agreement,
    )
    report.passed = max_diff <= atol and not _ties_fail(report) and not violations
    return report


def _failure_message(model_name: str, report: VerifyReport, tie_eps: float) -> str:
    reasons = []
    if report.max_abs_diff > report.atol:
        reasons.append(
            f"max |tflite - keras| = {report.max_abs_diff:.3g} > atol {report.atol:g}"
        )
    total = report.samples + report.random_samples
    if _ties_fail(report) and report.sign_ties_sample is not None:
        reasons.append(
            f"{report.sign_ties_sample} of {report.samples} real inputs differ only through "
            f"binary activations within {tie_eps:g} of zero, and the file keeps Keras's top-1 "
            f"class on {100 * report.top1_agreement_sample:.1f} % of the real inputs (needed: "
            f"{100 * report.tie_agreement:g} %). Fix: train the model longer (a BatchNorm with "
            "its initial statistics puts binary dot products exactly at 0)."
        )
    elif _ties_fail(report):
        reasons.append(
            f"{report.sign_ties} of {total} inputs differ only through binary activations within "
            f"{tie_eps:g} of zero: too many to call it float rounding. An untrained model does "
            "this (its BatchNorm still has the initial statistics, so binary dot products hit "
            "exactly 0). Fix: train it first."
        )
    if report.first_disagreement:
        reasons.append(
            _where(report.first_disagreement) + ". Fix: change that layer, or how it is fed, "
            "into a form LCE converts exactly (lt.export writes no file that disagrees)."
        )
    reasons += report.violations
    return f"The .tflite of {model_name!r} failed verification:\n- " + "\n- ".join(reasons)


def _sign_ties(model, x: np.ndarray, tie_eps: float) -> np.ndarray:
    """Per input: does any binary conv see a nonzero value within tie_eps·RMS of 0 (in Keras)?"""
    binary = [layer for layer in model.layers if rules.is_binary_conv(layer)]
    if not binary:
        return np.zeros(len(x), bool)
    try:
        probe = tf.keras.Model(model.inputs, [layer.input for layer in binary])
    # `layer.input` raises AttributeError for a layer that was never called in a graph
    # (a subclassed model); the Model constructor raises ValueError when a layer's first
    # call is not reachable from `model.inputs` (a nested or shared layer). No probe, no ties.
    except (AttributeError, ValueError):
        return np.zeros(len(x), bool)
    values = probe(x, training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    tie = np.zeros(len(x), bool)
    for value in values:
        value = np.asarray(value).reshape(len(x), -1)
        rms = np.sqrt(np.mean(value**2, axis=1, keepdims=True))
        # An exact 0 is no tie: sign(0) = +1 in Keras and in LCE alike. Measured: the
        # zero padding in front of ResNet50's max pool puts ~390 exact zeros into every
        # input's first binary conv once the ReLU there is gone, which made every input
        # a "tie" and left its parity unchecked.
        near = np.abs(value) <= tie_eps * np.maximum(rms, 1e-12)
        tie |= np.any(near & (value != 0), axis=1)
    return tie
