"""What a converted `.tflite` really contains: op counts and bytes by tensor type.

`op_census` is the plain-data summary that verification reports, sidecars store
and benchmarks tabulate; `rules.strict_violations` judges the same file against
the Keras model.
"""

import collections
from typing import Dict

from larq_tentacle.deploy.rules import FLOAT_COMPUTE_OPS
from larq_tentacle.deploy.tflite_file import LCE_OPS, Tensor, read_flatbuffer


def op_census(flatbuffer) -> dict:
    """Op counts and bytes of a `.tflite` (bytes or path), as plain JSON-ready data.

    !!! example
        ```python
        census = lt.op_census("nin5.tflite")
        census["ops"]["LceBconv2d"]        # binary convolutions
        census["tensor_bytes"]["FLOAT32"]  # float weights still in the file
        ```

    # Returns
        A dict with `ops` (op name -> count), `lce_ops` (the LCE ones),
        `float_compute_ops` (float conv/dense ops), `tensor_bytes` (constant bytes
        by tensor type), `binary_weight_bytes` (bitpacked LceBconv2d filters),
        `float_weight_bytes`, `total_bytes` (file size), `inputs`/`outputs`
        (shape and type of the model's inputs and outputs) and `subgraphs`.
    """
    graph = read_flatbuffer(flatbuffer)
    counts = graph.op_counts()
    tensor_bytes: Dict[str, int] = collections.Counter()
    for tensor in graph.tensors:
        if tensor.nbytes:
            tensor_bytes[tensor.type] += tensor.nbytes
    binary_filters = {
        op.inputs[1] for op in graph.operators if op.op == "LceBconv2d" and len(op.inputs) > 1
    }
    return {
        "ops": dict(sorted(counts.items())),
        "lce_ops": {name: counts.get(name, 0) for name in LCE_OPS},
        "float_compute_ops": {name: counts[name] for name in FLOAT_COMPUTE_OPS if name in counts},
        "unknown_custom_ops": sorted({op.op for op in graph.unknown_custom_ops()}),
        "tensor_bytes": dict(sorted(tensor_bytes.items())),
        "binary_weight_bytes": sum(graph.tensors[t].nbytes for t in binary_filters),
        "float_weight_bytes": sum(t.nbytes for t in graph.tensors if t.type == "FLOAT32"),
        "total_bytes": graph.total_bytes,
        "inputs": [_io(graph.tensors[t]) for t in graph.inputs],
        "outputs": [_io(graph.tensors[t]) for t in graph.outputs],
        "subgraphs": graph.subgraphs,
    }


def _io(tensor: Tensor) -> dict:
    return {"name": tensor.name, "shape": list(tensor.shape), "type": tensor.type}


def census_markdown(census: dict) -> str:
    """One line per op and per tensor type, for reports."""
    ops = ", ".join(f"{name} {count}" for name, count in census["ops"].items())
    sizes = ", ".join(
        f"{name} {count / 1024:.1f} kB" for name, count in census["tensor_bytes"].items()
    )
    return f"ops: {ops}\nconstant bytes: {sizes}"
