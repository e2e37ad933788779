"""Where a `.tflite` starts to disagree with Keras: the first layer whose output differs.

The LCE interpreter exposes no intermediate tensors, and giving the model extra
outputs changes what the converter fuses (a Pad read twice is no longer folded into
its conv), so `first_disagreement` converts the model cut after a layer
(`tf.keras.Model(model.inputs, layer.output)`, with `conversion.convert`, as
`lt.export` converts) and compares that file with Keras. It bisects over the cut
points (layers that every earlier layer feeds: each layer of a chain, a ResNet's Add
outputs), then walks through the layers of the first block that disagrees: about
log2(blocks) + block size conversions, so `verify` runs it only after parity failed.
"""

import dataclasses
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.core.graph import LayerGraph
from larq_tentacle.deploy.conversion import ExportError, convert
from larq_tentacle.deploy.tflite_file import TFLiteFileError

DEFAULT_MAX_CONVERSIONS = 24


@dataclasses.dataclass
class Disagreement:
    """The first layer whose cut model converts to a file that disagrees with Keras."""

    layer: str
    class_name: str
    max_abs_diff: float
    scale: float  # the largest |value| Keras computes there
    last_agreeing: Optional[str]  # the latest layer feeding it found to agree (None: none)
    conversions: int

    def describe(self) -> str:
        after = f", while {self.last_agreeing!r} still agrees" if self.last_agreeing else ""
        return (
            f"The first layer whose output disagrees is {self.layer!r} ({self.class_name}): "
            f"max |Δ| {self.max_abs_diff:.3g} on values up to {self.scale:.3g}{after} "
            f"(found by converting the model cut after each layer, {self.conversions} "
            "conversions)"
        )


def first_disagreement(
    model: tf.keras.Model, x: np.ndarray, interpreter_factory, *, tolerance: float,
    target: str = "arm", max_conversions: int = DEFAULT_MAX_CONVERSIONS,
) -> Optional[Disagreement]:
    """The first layer where the converted model disagrees with Keras on `x`, or None.

    # Arguments
        model: a functional Keras model (None for others: their layers cannot be cut).
        x: the inputs to compare on (those that failed verification).
        interpreter_factory: flatbuffer -> an interpreter with `predict`.
        tolerance: a layer disagrees when max |Δ| > tolerance · max(1, max |value|).
        max_conversions: stop after that many; the result is then the latest block found.

    # Returns
        A `Disagreement`, or None when the graph cannot be cut or the whole model,
        converted again, agrees (the file was then not made from it by `lt.export`).
    """
    try:
        graph = LayerGraph(model, where="Localising the disagreement")
    except (TypeError, ValueError):
        return None
    probe = _Probe(model, graph, x, interpreter_factory, tolerance, target)
    order = [name for name in graph.order if name != graph.input_name]
    cuts = _cut_points(graph, order)
    if not probe.disagrees(cuts[-1]):
        return None
    low, high = -1, len(cuts) - 1  # cuts[low] agrees (-1: the input), cuts[high] does not
    while high - low > 1 and probe.conversions < max_conversions:
        middle = (low + high) // 2
        if probe.disagrees(cuts[middle]):
            high = middle
        else:
            low = middle
    start = order.index(cuts[low]) + 1 if low >= 0 else 0
    for name in order[start : order.index(cuts[high])]:
        if probe.conversions >= max_conversions:
            break
        if probe.disagrees(name):
            return probe.disagreement(name)
    return probe.disagreement(cuts[high])


def _cut_points(graph: LayerGraph, order: List[str]) -> List[str]:
    """The layers (in order) whose cut model holds every layer before them; ends at the output."""
    cuts, seen = [], set()
    for name in order:
        seen.add(name)
        if (graph.ancestors(name) - {graph.input_name}) | {name} == seen:
            cuts.append(name)
    if not cuts or cuts[-1] != graph.output_name:
        cuts.append(graph.output_name)
    return cuts


class _Probe:
    """Converts cut models and remembers, per layer, (max |Δ|, scale) or None (cannot run)."""

    def __init__(self, model, graph, x, interpreter_factory, tolerance, target):
        self.model, self.graph, self.x = model, graph, x
        self.interpreter_factory, self.tolerance, self.target = (
            interpreter_factory, tolerance, target
        )
        self.results: Dict[str, Optional[tuple]] = {}
        self.conversions = 0

    def disagrees(self, name: str) -> bool:
        """Unknown (the cut does not convert or run) counts as agreeing."""
        result = self._measure(name)
        return result is not None and result[0] > self.tolerance * max(1.0, result[1])

    def disagreement(self, name: str) -> Disagreement:
        diff, scale = self._measure(name)
        ancestors = self.graph.ancestors(name)
        before = [
            n for n, result in self.results.items()
            if n in ancestors and result is not None and not self.disagrees(n)
        ]
        order = self.graph.order
        return Disagreement(
            layer=name, class_name=type(self.graph.layer(name)).__name__,
            max_abs_diff=diff, scale=scale,
            last_agreeing=max(before, key=order.index) if before else None,
            conversions=self.conversions,
        )

    def _measure(self, name: str) -> Optional[tuple]:
        if name not in self.results:
            self.results[name] = self._compare(name)
        return self.results[name]

    def _compare(self, name: str) -> Optional[tuple]:
        try:
            cut = tf.keras.Model(self.model.inputs, self.graph.layer(name).output)
        except (AttributeError, ValueError):  # a layer called in several models
            return None
        self.conversions += 1
        try:
            interpreter = self.interpreter_factory(convert(cut, target=self.target))
            got = np.asarray(interpreter.predict(self.x))
        except (ExportError, TFLiteFileError, RuntimeError, ValueError):
            return None
        expected = np.asarray(cut(self.x, training=False))
        if got.size != expected.size:
            return None
        diff = np.abs(got.reshape(expected.shape) - expected)
        return float(diff.max()), float(np.abs(expected).max())
