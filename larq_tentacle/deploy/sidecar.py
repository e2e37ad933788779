"""The sidecar `<model>.tflite.json`: how to use an exported model.

It holds the versions, the model and its tentacles, the input shape and
preprocessing, the class names, the sizes, the op census and the bconv kernel
the file needs. `write_model_and_sidecar` writes both files atomically and
together, so a device never sees a model without its sidecar.
"""

import json
import os
from typing import Optional

from larq_tentacle.deploy import census
from larq_tentacle.deploy.conversion import fixed_input_shape
from larq_tentacle.deploy.verification import VerifyReport, paper_size_kb_or_none
from larq_tentacle.utils import atomic

SIDECAR_FORMAT = 1


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


def write_model_and_sidecar(path: str, flatbuffer: bytes, sidecar: dict) -> str:
    """Write `path` and its sidecar so that both land together; returns the sidecar's path."""
    json_path = sidecar_path(path)
    with atomic.atomic_path(path) as tflite_tmp, atomic.atomic_path(json_path) as json_tmp:
        # Both land together: the sidecar is renamed first, then the model.
        with open(tflite_tmp, "wb") as file:
            file.write(flatbuffer)
        atomic.write_json(json_tmp, sidecar)
    return json_path


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


def _kernel_entry(indirect: bool) -> dict:
    if not indirect:
        return {"use_indirect_bgemm": False, "why": "any LCE bconv kernel"}
    return {
        "use_indirect_bgemm": True,
        "why": (
            "grouped binary convs: LCE's default bconv kernel rejects them; run with "
            "use_indirect_bgemm=True / lce_benchmark_model --use_indirect_bgemm=true"
        ),
    }


def build_sidecar(
    original,
    model,
    flatbuffer: bytes,
    *,
    preprocessing,
    class_names,
    report: Optional[VerifyReport],
    target: str,
    fused: bool,
    indirect: bool,
    model_name: Optional[str],
    source: Optional[str],
    tensor_names: dict,
    quantization: Optional[dict] = None,
) -> dict:
    """The sidecar of `flatbuffer`, converted from `model` (`original` before fusion)."""
    from larq_tentacle.utils.versions import versions

    tentacles, head_variant = _tentacles(original)
    paper_kb = paper_size_kb_or_none(original)
    verification = None
    if report is not None:
        verification = {k: v for k, v in report.to_dict().items() if k != "census"}
    return {
        "format": SIDECAR_FORMAT,
        "model": model_name or original.name,
        "keras_name": original.name,
        "source": source,
        "tentacles": tentacles,
        "head_variant": head_variant,
        "input_shape": list(fixed_input_shape(model)),
        "input_dtype": quantization["input"]["dtype"] if quantization else "float32",
        "output_shape": list(model.output_shape[1:]),
        "preprocessing": preprocessing,
        "class_names": class_names,
        "paper_size_kb": paper_kb,
        "tflite_bytes": len(flatbuffer),
        "size_ratio": None if not paper_kb else len(flatbuffer) / 1024 / paper_kb,
        "target": target,
        "fused": bool(fused),
        "kernel": _kernel_entry(bool(indirect)),
        "tensor_names": tensor_names,
        # None for a float export; else how to feed and read the int8 file (deploy/int8.py).
        "quantization": quantization,
        "census": report.census if report is not None else census.op_census(flatbuffer),
        "verification": verification,
        "versions": versions(),
    }
