"""A read-only view of a functional Keras model's layer graph, from public APIs only.

`tentaclize` needs to know which layer feeds which. `Model.get_config()` records
that ("inbound_nodes"), so the graph is read from there instead of Keras internals.
"""

from typing import Dict, List

import tensorflow as tf


class LayerGraph:
    """Layers of a single-input, single-output functional model with their edges."""

    def __init__(self, model: tf.keras.Model, *, where: str = "tentaclize"):
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
                "Fix: build it with the functional API (tf.keras.Input ... tf.keras.Model(inputs, outputs))."
            )
        if len(config["input_layers"]) != 1 or len(config["output_layers"]) != 1:
            raise ValueError(
                f"{where} supports models with one input and one output; {model.name!r} has "
                f"{len(config['input_layers'])} inputs and {len(config['output_layers'])} outputs."
            )
        self.model = model
        self.inputs_of: Dict[str, List[str]] = {}
        self.consumers_of: Dict[str, List[str]] = {}
        for entry in config["layers"]:
            name = entry["name"]
            nodes = entry["inbound_nodes"]
            if len(nodes) > 1:
                raise ValueError(
                    f"{where} does not support layers called more than once; layer {name!r} of "
                    f"{model.name!r} is called {len(nodes)} times. Fix: give each call its own layer."
                )
            producers = []
            for inbound in nodes[0] if nodes else []:
                producer, node_index, tensor_index = inbound[0], inbound[1], inbound[2]
                call_kwargs = inbound[3] if len(inbound) > 3 else {}
                if node_index != 0 or tensor_index != 0 or _has_tensor_arguments(call_kwargs):
                    raise ValueError(
                        f"{where} cannot read the connection {producer!r} -> {name!r} of "
                        f"{model.name!r} ({entry['class_name']}). Fix: use Keras layers "
                        "(e.g. tf.keras.layers.Add) instead of tensor operators or multi-output layers."
                    )
                producers.append(producer)
            self.inputs_of[name] = producers
            self.consumers_of.setdefault(name, [])
            for producer in producers:
                self.consumers_of.setdefault(producer, []).append(name)
        self.input_name = config["input_layers"][0][0]
        self.output_name = config["output_layers"][0][0]
        self.order = self._topological_order()

    def layer(self, name: str) -> tf.keras.layers.Layer:
        return self.model.get_layer(name)

    def _topological_order(self) -> List[str]:
        remaining = {name: len(producers) for name, producers in self.inputs_of.items()}
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

    def descendants(self, name: str) -> set:
        found, stack = set(), [name]
        while stack:
            for consumer in self.consumers_of[stack.pop()]:
                if consumer not in found:
                    found.add(consumer)
                    stack.append(consumer)
        return found

    def ancestors(self, name: str) -> set:
        found, stack = set(), [name]
        while stack:
            for producer in self.inputs_of[stack.pop()]:
                if producer not in found:
                    found.add(producer)
                    stack.append(producer)
        return found


def _has_tensor_arguments(call_kwargs) -> bool:
    """True when a call passed tensors as keyword arguments (e.g. `x + y` lambdas)."""
    if isinstance(call_kwargs, dict):
        return any(_has_tensor_arguments(value) for value in call_kwargs.values())
    if isinstance(call_kwargs, (list, tuple)):
        return len(call_kwargs) >= 3 and isinstance(call_kwargs[0], str) and isinstance(call_kwargs[1], int)
    return False
