"""One registry of base models behind `build()` and `list_models()`."""

import dataclasses
import inspect
from typing import Callable, Dict, Optional, Tuple

import tensorflow as tf

from larq_tentacle.core.blocks import check_block
from larq_tentacle.core.template import INITS, tentaclize
from larq_tentacle.utils import validation

PRECISIONS = ("binary", "float")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered base model: its float builder, defaults and the paper's numbers."""

    name: str
    builder: Callable[..., tf.keras.Model]
    num_classes: int
    input_shape: Tuple[int, int, int]
    min_input_size: int
    dataset: str
    # The paper's sizes in kB: {"float": ..., "binary": ..., "tentaclenet": (n, kB)}
    paper_size_kb: Dict[str, object]
    # Model options that reproduce the paper's sizes (e.g. ResNet9's projections)
    paper_options: Dict[str, object] = dataclasses.field(default_factory=dict)

    def options(self) -> Tuple[str, ...]:
        """Architecture keyword arguments beyond num_classes/input_shape."""
        parameters = inspect.signature(self.builder).parameters
        return tuple(p for p in parameters if p not in ("num_classes", "input_shape"))


_MODELS: Dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _MODELS:
        raise ValueError(f"A model named {spec.name!r} is already registered.")
    _MODELS[spec.name] = spec
    return spec


def list_models() -> list:
    return sorted(_MODELS)


def get_spec(name: str) -> ModelSpec:
    if not isinstance(name, str) or name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {list_models()}.")
    return _MODELS[name]


def build(
    name: str,
    *,
    tentacles: int = 1,
    precision: str = "binary",
    num_classes: Optional[int] = None,
    input_shape=None,
    init: str = "hadamard",
    seed: int = 0,
    fused=False,
    block: str = "xnor",
    rprelu: bool = False,
    **model_options,
) -> tf.keras.Model:
    """Build a registered model: the FP32 baseline, its BNN, or a TentacleNet.

    !!! example
        ```python
        fp = lt.build("nin", precision="float")   # FP32 baseline
        bnn = lt.build("nin")                      # XNOR-Net BNN (1 tentacle)
        tn = lt.build("nin", tentacles=5)          # TentacleNet
        half = lt.build("fernet", precision="float", width=0.5)  # half the channels
        ```

    # Arguments
        name: one of `list_models()`.
        tentacles: binary tentacles (1 = the plain BNN). Must be 1 for precision="float".
        precision: "binary" (XNOR-Net tentacles) or "float" (the FP32 baseline).
        num_classes: classes of the classifier (default: the model's dataset).
        input_shape: (height, width, channels) (default: the model's dataset).
        init: "hadamard" or "copy", see `tentaclize`.
        seed: base seed for the tentacles' initializers.
        fused: False (branched), True (one grouped binary conv per tentacle layer)
            or "auto", see `tentaclize` and `larq_tentacle.core.fusion`.
        block: "xnor" (the paper's block) or "react" (a learnable shift in front of
            every binary activation), see `tentaclize`. Must be "xnor" for precision="float".
        rprelu: with block="react", ReActNet's RPReLU in the tentacles, see `tentaclize`.
        **model_options: architecture options of the model (e.g. ResNet9's
            `projection_shortcuts`); options given as None keep their defaults, so
            command-line flags left unset do not override them. Built-in models take
            `width` (default 1.0): a factor on every hidden layer's channels.
    """
    spec = get_spec(name)
    model_options = checked_model_options(spec, model_options)
    precision = validation.choice("precision", precision, PRECISIONS)
    tentacles = validation.positive_int(
        "tentacles", tentacles, hint="pass the number of tentacles, e.g. tentacles=3"
    )
    block, rprelu = check_block(block, rprelu)
    if precision == "float":
        _refuse_tentacle_options_for_float(tentacles, init, fused, block)
    validation.choice("init", init, INITS)
    num_classes = spec.num_classes if num_classes is None else num_classes
    num_classes = validation.positive_int(
        "num_classes", num_classes, minimum=2, hint="a classifier needs at least 2 classes"
    )
    input_shape = validation.input_shape(
        spec.input_shape if input_shape is None else input_shape,
        min_size=spec.min_input_size,
        model=name,
        why="the feature map must stay at least 1x1 after its downsampling",
    )
    float_model = spec.builder(num_classes=num_classes, input_shape=input_shape, **model_options)
    if precision == "float":
        return float_model
    return tentaclize(
        float_model,
        tentacles=tentacles,
        init=init,
        seed=seed,
        name=f"{name}_tentacles{tentacles}",
        fused=fused,
        block=block,
        rprelu=rprelu,
    )


def checked_model_options(spec: ModelSpec, model_options: dict, *, where: str = "") -> dict:
    """The options the builder takes; None keeps a default, a bad `width` fails here."""
    model_options = {k: v for k, v in model_options.items() if v is not None}
    validation.no_unknown(
        model_options, spec.options(), where=where or f"build({spec.name!r})"
    )
    if "width" in model_options:
        model_options["width"] = validation.width_multiplier(model_options["width"])
    return model_options


def _refuse_tentacle_options_for_float(tentacles: int, init: str, fused, block: str):
    """The FP32 baseline is one float model: no tentacles to replicate or fuse."""
    if tentacles != 1:
        raise ValueError(
            f"precision='float' builds the single FP32 baseline, so tentacles must be 1, got "
            f"tentacles={tentacles}. Fix: drop `tentacles` or use precision='binary'."
        )
    validation.choice("init", init, INITS)
    if fused is not False:
        raise ValueError(
            f"precision='float' builds the FP32 baseline, which has no tentacles to fuse, got "
            f"fused={fused!r}. Fix: drop `fused` or use precision='binary'."
        )
    if block != "xnor":
        raise ValueError(
            f"precision='float' builds the FP32 baseline, which has no binary activations to "
            f"shift, got block={block!r}. Fix: drop `block`/`rprelu` or use precision='binary'."
        )
