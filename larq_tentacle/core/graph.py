"""Reading a functional Keras model's layer graph, and cloning its layers to rebuild one.

The template (`tentaclize`), the fused form (`fuse` / `unfuse`), the export census and
the tests need to know which layer feeds which. `Model.get_config()` records that
under each layer's "inbound_nodes", so the graph is read from there (one reader for
all of them) instead of from Keras internals.

Not a documented API: the layout of an "inbound_nodes" entry. Per call of a layer it
lists the tensors the call read, each as `[layer name, node index, tensor index,
call kwargs]` (Keras 2's functional serialization format, the one `from_config`
reads back). Everything else used here (`get_config`, `from_config`, `get_layer`)
is public.
"""

from typing import Dict, List, Tuple

import tensorflow as tf

Ref = Tuple[str, int]
"""A tensor of the graph: (producing layer's name, index of that layer's call)."""


class LayerGraph:
    """The layers of a functional model with their edges, read from `model.get_config()`.

    !!! example
        ```python
        graph = LayerGraph(model, where="tentaclize")
        graph.inputs_of["conv2"]        # ['bn1']: the layers its (first) call reads
        graph.consumers_of["conv2"]     # ['bn2']: one entry per read, over every call
        ```

    # Arguments
        model: a functional `tf.keras.Model` (Sequential and subclassed models are
            refused with a TypeError that says how to convert them).
        where: the caller's name, used in error messages ("tentaclize", "fuse", ...).
        shared_layers: False (default) for rebuilding a model layer by layer: one
            input and one output, every layer called at most once, reading only the
            first output of single-output layers; anything else is a ValueError
            naming the layer. True accepts layers called several times (a head conv
            applied to every tentacle) and records every call.

    # Attributes
        model: the model read.
        names: layer names in the order of the config (Keras lists producers first).
        order: layer names in topological order (breadth first from the input).
        calls_of: layer name -> per call, the `Ref`s of the tensors it read.
        inputs_of: layer name -> names of the layers its first call read.
        consumers_of: layer name -> names of the layers that read it, one entry per
            read over every call.
        input_names, output_names: the model's input and output layers.
        later_output_reads: (producer, consumer) pairs where the consumer read an
            output other than the first of a multi-output layer (shared_layers=True).
    """

    def __init__(self, model: tf.keras.Model, *, where: str = "tentaclize", shared_layers=False):
        self.model = model
        self.where = where
        # by name: `model.get_layer` scans every layer (minutes on a DenseNet121 TentacleNet)
        self._layers = {layer.name: layer for layer in model.layers}
        config = _functional_config(model, where)
        self.input_names = [entry[0] for entry in config["input_layers"]]
        self.output_names = [entry[0] for entry in config["output_layers"]]
        if not shared_layers:
            self.require_one_input_and_output()
        self.names: List[str] = []
        self.calls_of: Dict[str, List[List[Ref]]] = {}
        self.inputs_of: Dict[str, List[str]] = {}
        self.consumers_of: Dict[str, List[str]] = {}
        self.later_output_reads: List[Tuple[str, str]] = []
        for entry in config["layers"]:
            self._add_layer(entry, shared_layers)
        self.order = self._topological_order()

    @property
    def input_name(self) -> str:
        """The model's one input layer (a ValueError for a model with several)."""
        self.require_one_input_and_output()
        return self.input_names[0]

    @property
    def output_name(self) -> str:
        """The model's one output layer (a ValueError for a model with several)."""
        self.require_one_input_and_output()
        return self.output_names[0]

    def layer(self, name: str) -> tf.keras.layers.Layer:
        if name not in self._layers:
            return self.model.get_layer(name)  # Keras's error naming the missing layer
        return self._layers[name]

    def descendants(self, name: str) -> set:
        """Every layer that reads `name`'s output, directly or not."""
        return self._reachable(name, self.consumers_of)

    def ancestors(self, name: str) -> set:
        """Every layer whose output reaches `name` (through first calls)."""
        return self._reachable(name, self.inputs_of)

    def require_one_input_and_output(self):
        """A ValueError naming the counts unless the model has one input and one output."""
        if len(self.input_names) != 1 or len(self.output_names) != 1:
            raise ValueError(
                f"{self.where} supports models with one input and one output; "
                f"{self.model.name!r} has {len(self.input_names)} inputs and "
                f"{len(self.output_names)} outputs."
            )

    def _add_layer(self, entry: dict, shared_layers: bool):
        name, nodes = entry["name"], entry["inbound_nodes"]
        if len(nodes) > 1 and not shared_layers:
            raise ValueError(
                f"{self.where} does not support layers called more than once; layer {name!r} "
                f"of {self.model.name!r} is called {len(nodes)} times. "
                "Fix: give each call its own layer."
            )
        self.names.append(name)
        self.calls_of[name] = [
            [self._read(entry, inbound, shared_layers) for inbound in node] for node in nodes
        ]
        self.inputs_of[name] = [producer for producer, _ in self.calls_of[name][0]] if nodes else []
        self.consumers_of.setdefault(name, [])
        for call in self.calls_of[name]:
            for producer, _ in call:
                self.consumers_of.setdefault(producer, []).append(name)

    def _read(self, entry: dict, inbound: list, shared_layers: bool) -> Ref:
        """The `Ref` of one tensor a call read, checked as `shared_layers` asks."""
        producer, node_index, tensor_index = inbound[0], inbound[1], inbound[2]
        if shared_layers:
            if tensor_index != 0:
                self.later_output_reads.append((producer, entry["name"]))
            return producer, node_index
        call_kwargs = inbound[3] if len(inbound) > 3 else {}
        if node_index != 0 or tensor_index != 0 or _has_tensor_arguments(call_kwargs):
            raise ValueError(
                f"{self.where} cannot read the connection {producer!r} -> {entry['name']!r} of "
                f"{self.model.name!r} ({entry['class_name']}). Fix: use Keras layers (e.g. "
                "tf.keras.layers.Add) instead of tensor operators or multi-output layers."
            )
        return producer, node_index

    def _topological_order(self) -> List[str]:
        calls_of = self.calls_of
        remaining = {name: sum(len(call) for call in calls_of[name]) for name in calls_of}
        ready = [name for name, count in remaining.items() if count == 0]
        order = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for consumer in self.consumers_of[name]:
                remaining[consumer] -= 1
                if remaining[consumer] == 0:
                    ready.append(consumer)
        return order

    @staticmethod
    def _reachable(name: str, edges: Dict[str, List[str]]) -> set:
        found, stack = set(), [name]
        while stack:
            for neighbour in edges[stack.pop()]:
                if neighbour not in found:
                    found.add(neighbour)
                    stack.append(neighbour)
        return found


def clone_layer(layer: tf.keras.layers.Layer, name: str, **overrides) -> tf.keras.layers.Layer:
    """A new, unbuilt layer with `layer`'s config, renamed to `name`, `overrides` applied."""
    config = layer.get_config()
    config.update(name=name, **overrides)
    return layer.__class__.from_config(config)


def call_layer(layer: tf.keras.layers.Layer, tensors: List[tf.Tensor]) -> tf.Tensor:
    """Call `layer` on one tensor, or on a list for merge layers (Add, Concatenate)."""
    return layer(tensors[0] if len(tensors) == 1 else tensors)


def _functional_config(model, where: str) -> dict:
    """`model.get_config()`, or a TypeError saying how to make `model` functional."""
    if isinstance(model, tf.keras.Sequential):
        raise TypeError(
            f"{where} needs a functional model, got the Sequential model {model.name!r}. "
            "Fix: wrap it as a functional model: "
            "tf.keras.Model(seq_model.inputs, seq_model.outputs)."
        )
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"{where} needs a tf.keras.Model, got {type(model).__name__}: {model!r}.")
    try:
        config = model.get_config()
    except NotImplementedError:
        config = None
    if not isinstance(config, dict) or "layers" not in config or "input_layers" not in config:
        raise TypeError(
            f"{where} needs a functional Keras model, got the subclassed model "
            f"{model.name!r} ({type(model).__name__}), whose layer graph cannot be read. "
            "Fix: build it with the functional API "
            "(tf.keras.Input ... tf.keras.Model(inputs, outputs))."
        )
    return config


def _has_tensor_arguments(call_kwargs) -> bool:
    """True when a call passed tensors as keyword arguments (e.g. `x + y` lambdas)."""
    if isinstance(call_kwargs, dict):
        return any(_has_tensor_arguments(value) for value in call_kwargs.values())
    if isinstance(call_kwargs, (list, tuple)):
        return (
            len(call_kwargs) >= 3
            and isinstance(call_kwargs[0], str)
            and isinstance(call_kwargs[1], int)
        )
    return False
