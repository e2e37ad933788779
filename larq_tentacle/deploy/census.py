"""What a converted `.tflite` really contains: op counts, bytes by tensor type, strict checks.

A BNN only pays off on the device if every binary conv became one `LceBconv2d`,
every BatchNorm after it was folded in, and activations stay bitpacked between
binary ops. The converter does not fail when that goes wrong: it silently keeps
float ops (an unfolded BatchNorm becomes MUL + ADD, a zero-padded conv writes
float output that needs an extra `LceQuantize`). `op_census` reads the
flatbuffer and `strict_violations` compares it with what the Keras model's
topology needs (rules in shared/reference/lce-notes.md §3):

* each binary conv (binary kernel and binary input) -> one LceBconv2d;
* no float conv / dense op whose name belongs to a tentacle layer;
* no float MUL/ADD/SUB/DIV from a BatchNorm next to a binary conv (after it, or
  in front of one): placed conv -> BN -> MaxPool it folds into the bconv; in a
  chain tentacle (no Add) no float MUL/ADD/SUB/DIV at all except a BatchNorm
  between float ops (NiN's bn9, in front of the float head);
* at most one LceQuantize per distinct float tensor that feeds binary convs
  (tentacles reading the same stem output share one, AvgPool and Add outputs
  need one); binary conv -> BN/MaxPool -> binary conv needs none, since with
  pad_values=1 and that order LCE keeps the activations bitpacked.

The flatbuffer is read with the TFLite schema module that ships with LCE, the
only reader here, so no other module parses `.tflite` files.
"""

import collections
import dataclasses
import os
from typing import Dict, List, Optional, Union

_IDENTIFIER = b"TFL3"
_LCE_OPS = ("LceBconv2d", "LceQuantize", "LceDequantize", "LceBMaxPool2d")
# Builtin op names are upper case; every other op name is a custom op.
_KNOWN_CUSTOM_OPS = frozenset(_LCE_OPS)
FLOAT_COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV")
FLOAT_ARITHMETIC_OPS = ("MUL", "ADD", "SUB", "DIV")


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


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    type: str
    shape: tuple
    nbytes: int  # bytes of constant data in its buffer (0 for activations)


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
            raise FileNotFoundError(f"No .tflite file at {path!r}. Fix: pass the path that lt.export wrote.")
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
    schema = _schema()
    builtin_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    try:
        model = schema.Model.GetRootAsModel(data, 0)
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
        buffer_bytes = []
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            if buffer.Offset() > 1:  # data stored after the flatbuffer (models > 2 GB)
                end = buffer.Offset() + buffer.Size()
                if end > len(data):
                    raise IndexError(f"buffer {i} ends at byte {end}")
                buffer_bytes.append(int(buffer.Size()))
            else:
                # Touches every byte, so a cut-off file fails here instead of later.
                buffer_bytes.append(0 if buffer.DataIsNone() else int(buffer.DataAsNumpy().nbytes))
        if model.SubgraphsLength() < 1:
            raise IndexError("no subgraph")
        graph = model.Subgraphs(0)
        tensors = []
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            name = tensor.Name().decode("utf-8", errors="replace") if tensor.Name() else f"tensor_{i}"
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            buffer = tensor.Buffer()
            nbytes = buffer_bytes[buffer] if 0 < buffer < len(buffer_bytes) else 0
            tensors.append(Tensor(name, type_names.get(tensor.Type(), str(tensor.Type())), shape, nbytes))
        operators = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            inputs = tuple(int(op.Inputs(k)) for k in range(op.InputsLength()))
            outputs = tuple(int(op.Outputs(k)) for k in range(op.OutputsLength()))
            operators.append(
                Operator(
                    i,
                    codes[op.OpcodeIndex()],
                    inputs,
                    outputs,
                    tuple(tensors[t].name for t in outputs),
                    custom=op.OpcodeIndex() in custom_codes,
                )
            )
        inputs = tuple(int(graph.Inputs(k)) for k in range(graph.InputsLength()))
        outputs = tuple(int(graph.Outputs(k)) for k in range(graph.OutputsLength()))
        subgraphs = model.SubgraphsLength()
    except TFLiteFileError:
        raise
    except Exception as error:  # flatbuffers raises IndexError/struct.error/ValueError on bad offsets
        raise TFLiteFileError(
            f"{what} is a corrupt or truncated TFLite flatbuffer ({len(data)} bytes; reading it "
            f"failed with {type(error).__name__}: {error}). Fix: export it again with lt.export "
            "and copy the whole file (compare its size with the sidecar's tflite_bytes)."
        ) from error
    return FlatbufferGraph(tuple(operators), tuple(tensors), inputs, outputs, subgraphs, len(data))


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
    `strict_violations` and per-op profiles still say which tentacle an op is in.

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
    binary_filters = {op.inputs[1] for op in graph.operators if op.op == "LceBconv2d" and len(op.inputs) > 1}
    return {
        "ops": dict(sorted(counts.items())),
        "lce_ops": {name: counts.get(name, 0) for name in _LCE_OPS},
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
    sizes = ", ".join(f"{name} {count / 1024:.1f} kB" for name, count in census["tensor_bytes"].items())
    return f"ops: {ops}\nconstant bytes: {sizes}"


# ---------------------------------------------------------------------------
# Strict checks: what the Keras model's topology needs vs what the file has.


def is_binary_conv(layer) -> bool:
    """A conv LCE can turn into LceBconv2d: 1-bit kernel and 1-bit input."""
    from larq_tentacle.core import binarization

    if not binarization.is_binary_layer(layer) or not _is_conv(layer):
        return False
    quantizer = getattr(layer, "input_quantizer", None)
    return quantizer is not None and getattr(quantizer, "precision", None) == 1


def _is_conv(layer) -> bool:
    import larq as lq

    return isinstance(layer, lq.layers.QuantConv2D)


@dataclasses.dataclass
class TopologyNeeds:
    """What a correct LCE conversion of a model must contain, read from its layers."""

    binary_convs: List[str]
    quantize_sources: List[str]  # one LceQuantize per distinct float tensor feeding binary convs
    unfoldable_ok_bn: List[str]  # BatchNorms between float ops (NiN's bn9): they stay MUL/ADD
    folded_bn: List[str]  # BatchNorms after or in front of a binary conv: they must fold into one
    float_binary_weight_layers: List[str]  # binary kernels LCE keeps in float (QuantDense, float input)
    chain_tentacles: List[int]  # tentacles without Add/Concatenate inside


def _layer_edges(model):
    """Producers and consumers of every layer, from the functional config (public API).

    Unlike `LayerGraph`, shared layers are fine here (NiN's head conv runs once per
    tentacle): a layer's producers are those of its first call, its consumer count
    covers every call.
    """
    config = model.get_config()
    if not isinstance(config, dict) or "layers" not in config:
        raise TypeError(
            f"The strict export check needs a functional model; {model.name!r} "
            f"({type(model).__name__}) has no readable layer graph. Fix: pass strict=False."
        )
    inputs_of, consumers_of, order = {}, {}, []
    for entry in config["layers"]:
        name = entry["name"]
        order.append(name)
        consumers_of.setdefault(name, [])
        nodes = entry["inbound_nodes"]
        inputs_of[name] = [inbound[0] for inbound in nodes[0]] if nodes else []
        for node in nodes:
            for inbound in node:
                consumers_of.setdefault(inbound[0], []).append(name)
    return inputs_of, consumers_of, order


def topology_needs(model) -> TopologyNeeds:
    """Count what `model` needs after an arm conversion (no conversion is run)."""
    import tensorflow as tf

    from larq_tentacle.core import binarization
    from larq_tentacle.core.layout import tentacle_index

    inputs_of, consumers_of, order = _layer_edges(model)
    layer = model.get_layer

    def skip_identity(name: str) -> str:
        while isinstance(layer(name), tf.keras.layers.Dropout) and inputs_of[name]:
            name = inputs_of[name][0]
        return name

    def single_use(name: str) -> bool:
        return len(consumers_of[name]) == 1

    def bitpackable(source: str) -> bool:
        # Ideal topology: binary conv -> BN / MaxPool (any order) -> binary conv needs no
        # quantize, because conv -> BN -> MaxPool with pad_values=1 keeps it bitpacked.
        name = source
        while isinstance(layer(name), (tf.keras.layers.MaxPooling2D, tf.keras.layers.BatchNormalization)):
            if not single_use(name):
                return False
            name = skip_identity(inputs_of[name][0])
        return is_binary_conv(layer(name)) and single_use(name)

    def feeds_binary_conv(name: str) -> bool:
        while single_use(name):
            name = consumers_of[name][0]
            if is_binary_conv(layer(name)):
                return True
            if not isinstance(layer(name), (tf.keras.layers.Dropout, tf.keras.layers.MaxPooling2D)):
                return False
        return False

    binary_convs, sources, float_binary = [], [], []
    for name in order:
        current = layer(name)
        if is_binary_conv(current):
            binary_convs.append(name)
            source = skip_identity(inputs_of[name][0])
            if source not in sources and not bitpackable(source):
                sources.append(source)
        elif binarization.is_binary_layer(current):
            float_binary.append(name)
    folded, float_bn = [], []
    for name in order:
        if isinstance(layer(name), tf.keras.layers.BatchNormalization) and inputs_of[name]:
            producer = inputs_of[name][0]
            after_bconv = is_binary_conv(layer(producer)) and single_use(producer)
            if after_bconv or feeds_binary_conv(name):
                folded.append(name)
            else:
                float_bn.append(name)
    merges = (tf.keras.layers.Add, tf.keras.layers.Concatenate, tf.keras.layers.Multiply, tf.keras.layers.Subtract)
    tentacles_with_merge, tentacles = set(), set()
    for name in order:
        index = tentacle_index(name)
        if index is not None:
            tentacles.add(index)
            if isinstance(layer(name), merges):
                tentacles_with_merge.add(index)
    return TopologyNeeds(
        binary_convs=binary_convs,
        quantize_sources=sources,
        unfoldable_ok_bn=float_bn,
        folded_bn=folded,
        float_binary_weight_layers=float_binary,
        chain_tentacles=sorted(tentacles - tentacles_with_merge),
    )


def unsupported_op_problems(graph: FlatbufferGraph, layer_names=()) -> List[str]:
    """Custom ops no runtime here implements, with the layer they come from."""
    problems = []
    for op in graph.unknown_custom_ops():
        owner = layer_of(op, set(layer_names))
        where = f" from layer {owner!r}" if owner else ""
        problems.append(
            f"op {op.op!r} (op {op.index}{where}) is neither a TFLite builtin nor an LCE op, so "
            "the LCE runtime cannot run the file. Fix: replace that layer with TFLite builtin ops "
            "(plain Keras layers) or leave it out of the exported model."
        )
    return problems


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


def strict_violations(model, flatbuffer, *, target: str = "arm") -> List[str]:
    """Every way the conversion of `model` falls short of a fully binary tentacle path.

    An empty list means: every binary conv is an LceBconv2d, no float conv or
    unfolded BatchNorm sits in a tentacle, and (target "arm") there are no more
    LceQuantize ops than the layers need.
    """
    from larq_tentacle.core.layout import tentacle_index

    graph = flatbuffer if isinstance(flatbuffer, FlatbufferGraph) else read_flatbuffer(flatbuffer)
    needs = topology_needs(model)
    counts = graph.op_counts()
    layer_names = {layer.name for layer in model.layers}
    problems = []

    for name in needs.float_binary_weight_layers:
        kind = type(model.get_layer(name)).__name__
        problems.append(
            f"layer {name!r} ({kind}) has a binary kernel that LCE cannot run as a binary op "
            "(LCE has no binary dense op and needs a binary input quantizer): its weights stay "
            "float32 in the .tflite. Fix: use a QuantConv2D with input_quantizer='ste_sign' "
            "(a dense layer becomes a 1x1 conv on a 1x1 map)."
        )
    bconvs = counts.get("LceBconv2d", 0)
    if needs.binary_convs and not any(counts.get(name) for name in _LCE_OPS):
        problems.append(
            f"the .tflite has no LCE op at all although the model has {len(needs.binary_convs)} "
            "binary convs: it was converted with the stock TFLite converter, so every binary "
            "conv runs as a float conv. Fix: convert with lt.export (Larq Compute Engine)."
        )
    elif bconvs != len(needs.binary_convs):
        problems.append(
            f"the model has {len(needs.binary_convs)} binary convs but the .tflite has {bconvs} "
            "LceBconv2d ops: some binary convs were not converted to binary ops. Fix: use "
            "QuantConv2D(input_quantizer='ste_sign', kernel_quantizer='magnitude_aware_sign' or "
            "'ste_sign', pad_values=1.0 for padding='same')."
        )
    for op in graph.operators:
        owner = layer_of(op, layer_names)
        index = tentacle_index(owner) if owner else None
        if index is None:
            continue
        if op.op in FLOAT_COMPUTE_OPS:
            problems.append(
                f"float {op.op} (op {op.index}, from layer {owner!r}) inside tentacle {index}: "
                "tentacle convs must be LceBconv2d."
            )
        elif op.op in FLOAT_ARITHMETIC_OPS:
            if owner in needs.folded_bn:
                problems.append(
                    f"float {op.op} (op {op.index}) from BatchNorm {owner!r} in tentacle {index}: "
                    "it was not folded into a binary conv. Fix: put BatchNorm right after the "
                    "QuantConv2D (conv -> BN -> MaxPool), with no other consumer of the conv."
                )
            elif index in needs.chain_tentacles and owner not in needs.unfoldable_ok_bn:
                problems.append(
                    f"float {op.op} (op {op.index}, from layer {owner!r}) in chain tentacle {index}: "
                    "a chain tentacle should be binary ops only."
                )
    if target == "arm":
        quantizes = counts.get("LceQuantize", 0)
        expected = len(needs.quantize_sources)
        if quantizes > expected:
            problems.append(
                f"the .tflite has {quantizes} LceQuantize ops but the layers need {expected} (one "
                f"per float tensor feeding binary convs: {needs.quantize_sources}): some binary "
                "convs write float output instead of bitpacked output. Fix: pad_values=1.0 for "
                "'same' padding, no activation on binary convs that feed binary convs, and "
                "QuantConv2D -> BatchNorm -> MaxPool order."
            )
    return problems
