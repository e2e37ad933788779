"""Reading and rewriting a `.tflite` flatbuffer: ops, tensors, names.

The flatbuffer is read with the TFLite schema module that ships with LCE, the
only reader here, so no other module parses `.tflite` files. `read_flatbuffer`
turns the main subgraph into plain Python data (`FlatbufferGraph`);
`compact_tensor_names` and `without_names` rewrite the names in a file, and
`layer_of` reads back which Keras layer an op came from.
"""

import collections
import dataclasses
import os
import struct
from typing import Dict, List, Optional, Union

_IDENTIFIER = b"TFL3"
LCE_OPS = ("LceBconv2d", "LceQuantize", "LceDequantize", "LceBMaxPool2d")
# Builtin op names are upper case; every other op name is a custom op.
_KNOWN_CUSTOM_OPS = frozenset(LCE_OPS)
# What the flatbuffers runtime raises on bad offsets or a cut-off buffer: IndexError and
# struct.error past the end, TypeError for a garbled number ("bad number ... for type
# uint32"), ValueError from numpy views and UnicodeDecodeError for a garbled name.
_CORRUPT_FILE_ERRORS = (IndexError, TypeError, ValueError, struct.error)


class TFLiteFileError(ValueError):
    """The bytes are not a complete TFLite flatbuffer."""


@dataclasses.dataclass(frozen=True)
class Operator:
    index: int
    op: str
    inputs: tuple  # tensor indices (-1 = optional input left out)
    outputs: tuple
    output_names: tuple
    custom: bool = False
    padding: Optional[str] = None  # "SAME" or "VALID" for builtin convs and pools, else None


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    type: str
    shape: tuple
    nbytes: int  # bytes of constant data in its buffer (0 for activations)
    scales: tuple = ()  # quantization scales: one, or one per channel of quantized_dimension
    zero_points: tuple = ()
    quantized_dimension: int = 0


@dataclasses.dataclass(frozen=True)
class FlatbufferGraph:
    """The main subgraph of a TFLite model, as plain Python data."""

    operators: tuple
    tensors: tuple
    inputs: tuple
    outputs: tuple
    subgraphs: int
    total_bytes: int

    def op_counts(self) -> Dict[str, int]:
        return dict(collections.Counter(op.op for op in self.operators))

    def unknown_custom_ops(self) -> List[Operator]:
        """Ops that neither TFLite nor LCE implements (a runtime rejects the file)."""
        return [op for op in self.operators if op.custom and op.op not in _KNOWN_CUSTOM_OPS]


def _schema():
    # Imported lazily: it loads TensorFlow through larq_compute_engine's __init__.
    from larq_compute_engine.mlir.python import tflite_schema

    return tflite_schema


def _enum_names(enum_class) -> Dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_")}


def as_bytes(flatbuffer: Union[bytes, bytearray, str, os.PathLike]) -> bytes:
    if isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        return bytes(flatbuffer)
    if isinstance(flatbuffer, (str, os.PathLike)):
        path = os.fspath(flatbuffer)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No .tflite file at {path!r}. Fix: pass the path that lt.export wrote."
            )
        with open(path, "rb") as file:
            return file.read()
    raise TypeError(
        f"Expected the .tflite as bytes or a file path, got {type(flatbuffer).__name__}. "
        "Fix: pass the bytes from lt.export / lce.convert_keras_model or a path."
    )


def read_flatbuffer(flatbuffer, *, what: str = "the model") -> FlatbufferGraph:
    """Parse a TFLite flatbuffer; a corrupt, truncated or foreign file raises TFLiteFileError."""
    data = as_bytes(flatbuffer)
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        found = data[4:8] if len(data) >= 8 else data[:8]
        raise TFLiteFileError(
            f"{what} is not a TFLite flatbuffer: it has {len(data)} bytes and file identifier "
            f"{found!r}, expected {_IDENTIFIER!r} at bytes 4-8. Fix: pass the .tflite written by "
            "lt.export (not a Keras .h5/.keras file, an image or a partial download)."
        )
    try:
        return _parse(data)
    except TFLiteFileError:
        raise
    except _CORRUPT_FILE_ERRORS as error:
        raise TFLiteFileError(
            f"{what} is a corrupt or truncated TFLite flatbuffer ({len(data)} bytes; reading it "
            f"failed with {type(error).__name__}: {error}). Fix: export it again with lt.export "
            "and copy the whole file (compare its size with the sidecar's tflite_bytes)."
        ) from error


def _parse(data: bytes) -> FlatbufferGraph:
    schema = _schema()
    model = schema.Model.GetRootAsModel(data, 0)
    codes, custom_codes = _operator_codes(model, _enum_names(schema.BuiltinOperator))
    buffer_bytes = _buffer_sizes(model, data)
    if model.SubgraphsLength() < 1:
        raise IndexError("no subgraph")
    graph = model.Subgraphs(0)
    tensors = _tensors(graph, buffer_bytes, _enum_names(schema.TensorType))
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        outputs = tuple(int(op.Outputs(k)) for k in range(op.OutputsLength()))
        operators.append(
            Operator(
                i,
                codes[op.OpcodeIndex()],
                tuple(int(op.Inputs(k)) for k in range(op.InputsLength())),
                outputs,
                tuple(tensors[t].name for t in outputs),
                custom=op.OpcodeIndex() in custom_codes,
                padding=_padding(schema, op),
            )
        )
    inputs = tuple(int(graph.Inputs(k)) for k in range(graph.InputsLength()))
    outputs = tuple(int(graph.Outputs(k)) for k in range(graph.OutputsLength()))
    return FlatbufferGraph(
        tuple(operators), tuple(tensors), inputs, outputs, model.SubgraphsLength(), len(data)
    )


def _padding(schema, op) -> Optional[str]:
    """The padding attribute of a builtin conv or pool op ("SAME"/"VALID"), else None."""
    kinds = {
        schema.BuiltinOptions.Conv2DOptions: schema.Conv2DOptions,
        schema.BuiltinOptions.DepthwiseConv2DOptions: schema.DepthwiseConv2DOptions,
        schema.BuiltinOptions.Pool2DOptions: schema.Pool2DOptions,
    }
    options_class = kinds.get(op.BuiltinOptionsType())
    table = op.BuiltinOptions()
    if options_class is None or table is None:
        return None
    options = options_class()
    options.Init(table.Bytes, table.Pos)
    return _enum_names(schema.Padding).get(options.Padding())


def _operator_codes(model, builtin_names: Dict[int, str]):
    """The op name of every operator code, and the indices of the custom ones."""
    codes, custom_codes = [], set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        custom = code.CustomCode()
        if custom:
            custom_codes.add(i)
            codes.append(custom.decode("utf-8"))
        else:
            # Since schema v3a the real code is the larger of the two fields.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            codes.append(builtin_names.get(builtin, f"BUILTIN_{builtin}"))
    return codes, custom_codes


def _buffer_sizes(model, data: bytes) -> List[int]:
    sizes = []
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.Offset() > 1:  # data stored after the flatbuffer (models > 2 GB)
            end = buffer.Offset() + buffer.Size()
            if end > len(data):
                raise IndexError(f"buffer {i} ends at byte {end}")
            sizes.append(int(buffer.Size()))
        else:
            # Touches every byte, so a cut-off file fails here instead of later.
            sizes.append(0 if buffer.DataIsNone() else int(buffer.DataAsNumpy().nbytes))
    return sizes


def _tensors(graph, buffer_bytes: List[int], type_names: Dict[int, str]) -> List[Tensor]:
    tensors = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        raw_name = tensor.Name()
        name = raw_name.decode("utf-8", errors="replace") if raw_name else f"tensor_{i}"
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        buffer = tensor.Buffer()
        nbytes = buffer_bytes[buffer] if 0 < buffer < len(buffer_bytes) else 0
        type_name = type_names.get(tensor.Type(), str(tensor.Type()))
        tensors.append(Tensor(name, type_name, shape, nbytes, *_quantization(tensor)))
    return tensors


def _quantization(tensor) -> tuple:
    """(scales, zero points, quantized dimension) of a tensor; empty for a float one."""
    params = tensor.Quantization()
    if params is None or params.ScaleLength() == 0:
        return (), (), 0
    scales = tuple(float(v) for v in params.ScaleAsNumpy())
    zero_points = ()
    if params.ZeroPointLength():
        zero_points = tuple(int(v) for v in params.ZeroPointAsNumpy())
    return scales, zero_points, int(params.QuantizedDimension())


def layer_of(op: Operator, layer_names: set) -> Optional[str]:
    """The Keras layer an op comes from, read from its output tensor's name.

    Converted tensor names look like `<model>/<layer>/<op>;<model>/<layer2>/...`
    (fused locations joined by ';', cut at 50 characters): the first part names
    the op's own layer.
    """
    for output_name in op.output_names:
        for part in output_name.split(";"):
            for segment in part.split("/"):
                if segment in layer_names:
                    return segment
    return None


# ---------------------------------------------------------------------------
# Rewriting names


def _unpacked(data: bytes):
    """The flatbuffer as the schema's mutable object tree; `data` passed `read_flatbuffer`."""
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def _packed(model, size_hint: int) -> bytes:
    # The object API packs every buffer 4-byte aligned, as the converter's own files are.
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


def without_names(flatbuffer) -> bytes:
    """The same model with every non-essential string removed: a size floor, not an export.

    Drops tensor and subgraph names, the description and the signature defs; custom
    op codes and metadata stay, so LCE still runs it. What is left beyond the
    constants is the flatbuffer's op and tensor tables. Exports keep short names
    instead (`compact_tensor_names`): the strict checks and on-device profiles read
    them to tell which Keras layer (which tentacle) an op came from.
    """
    data = as_bytes(flatbuffer)
    read_flatbuffer(data)  # a clear error for a file that is not a flatbuffer
    model = _unpacked(data)
    model.description = None
    model.signatureDefs = None
    for subgraph in model.subgraphs or []:
        subgraph.name = None
        for tensor in subgraph.tensors or []:
            tensor.name = None
    return _packed(model, len(data))


def compact_tensor_names(flatbuffer, layer_names) -> bytes:
    """The same model with each op's output tensor named after its Keras layer only.

    The converter names tensors after their TF graph locations
    (`model/t3_conv2/Conv2D;model/t3_bn2/...`, up to 50 characters each, weights
    and thresholds included): 0.4-2 % of a binary model's file. Here an op's output
    keeps just the Keras layer it comes from (`t3_conv2`, `t3_conv2/1` for a
    second one), constants and ops from no Keras layer lose their names, and the
    model's input and output tensors and the signature keep theirs. `layer_of`
    reads the same owner from the short name as from the long one, so
    `rules.strict_violations` and per-op profiles still say which tentacle an op is in.

    # Arguments
        flatbuffer: `.tflite` bytes or path.
        layer_names: the names of the layers of the Keras model it was converted from.
    """
    data = as_bytes(flatbuffer)
    graph = read_flatbuffer(data)
    model = _unpacked(data)
    tensors = model.subgraphs[0].tensors or []
    layer_names = set(layer_names)
    keep = set(graph.inputs) | set(graph.outputs)
    names: Dict[int, str] = {}
    used = {graph.tensors[index].name for index in keep}
    for op in graph.operators:
        owner = layer_of(op, layer_names)
        for index in op.outputs if owner else ():
            if index in keep or index in names:
                continue
            name, k = owner, 0
            while name in used:
                k += 1
                name = f"{owner}/{k}"
            used.add(name)
            names[index] = name
    for index, tensor in enumerate(tensors):
        if index not in keep:
            tensor.name = names[index].encode("utf-8") if index in names else None
    return _packed(model, len(data))
