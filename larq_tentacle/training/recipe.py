"""The training recipe: how a model is trained, whatever model or data it trains on.

`Recipe` holds the fields every trainer of the project shares: `TrainConfig` (one
run), the sweep (every method of a sweep trains with one recipe), the demo and the
BENN members. Each field carries its command-line help in `metadata["help"]`, and
`recipe_flags` generates the apps' absl flags from these fields, so a new recipe
field is a new flag without further code.

The recipe is keyword-only, so a config can inherit it and still put its own
required fields (e.g. `TrainConfig.model`) first.
"""

import dataclasses
from typing import Union

from larq_tentacle.core.blocks import BLOCKS, check_block
from larq_tentacle.utils import validation

OPTIMIZERS = ("adam", "sgd")
AUGMENT_CHOICES = ("default", "none", "crop", "crop_flip")
FUSED_FLAG_VALUES = {"auto": "auto", "true": True, "false": False}


def described(default, help: str, **metadata):
    """A dataclass field with a default and its command-line help (and flag options)."""
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=dict(help=help, **metadata))
    return dataclasses.field(default=default, metadata=dict(help=help, **metadata))


def fused_from_flag(text) -> Union[bool, str]:
    """`--fused=auto|true|false` as `lt.build` takes it ("auto", True or False)."""
    if isinstance(text, bool) or text == "auto":
        return text
    value = FUSED_FLAG_VALUES.get(str(text).strip().lower())
    if value is None:
        raise ValueError(
            f"Expected `fused` to be auto, true or false, got {text!r}. Fix: e.g. --fused=auto."
        )
    return value


@dataclasses.dataclass(kw_only=True)
class Recipe:
    """How to train: epochs, batch, optimizer, LR schedule, augmentation, seed, model form.

    # Arguments
        epochs: total epochs (the paper: 300).
        batch_size: global batch size (split across replicas/workers).
        learning_rate: initial learning rate.
        optimizer: "adam" (the paper's XNOR-Net recipe) or "sgd" (momentum 0.9).
        lr_patience, lr_factor: ReduceLROnPlateau on val_loss (the paper: 15, 0.1).
        augment: "default" (the dataset's usual augmentation), "none", "crop", "crop_flip".
        seed: seeds weights, shuffling, augmentation and the validation hold-out.
        fused: the TentacleNet's form while training: False (branched), True (one grouped
            binary conv per tentacle layer) or "auto" (the faster on this device), as
            `lt.build(..., fused=...)` takes it.
        block: the tentacles' block, "xnor" (the paper's) or "react" (a learnable shift in
            front of every binary activation), as `lt.build(..., block=...)`. Binary
            models only: the FP32 baseline of a sweep trains without it.
        rprelu: with block "react", ReActNet's RPReLU in the tentacles.
    """

    epochs: int = described(300, "Epochs (the paper: 300).")
    batch_size: int = described(128, "Global batch size (split across replicas/workers).")
    learning_rate: float = described(1e-3, "Initial learning rate.")
    optimizer: str = described("adam", "adam (the paper's) or sgd (momentum 0.9).")
    lr_patience: int = described(15, "Epochs without val_loss progress before the LR drops.")
    lr_factor: float = described(0.1, "Factor the LR is multiplied by on a plateau.")
    augment: str = described("default", "default (the dataset's), none, crop or crop_flip.")
    seed: int = described(0, "Seed of weights, shuffling, augmentation, validation hold-out.")
    fused: Union[bool, str] = described(
        False,
        "TentacleNet form: false (branched), true (grouped convs) or auto (faster here).",
        from_flag=fused_from_flag,
    )
    block: str = described(
        "xnor", f"Tentacle block: {' or '.join(BLOCKS)} (learnable shifts before the signs)."
    )
    rprelu: bool = described(False, "With --block=react: RPReLU (shift, PReLU, shift) too.")

    def resolved_recipe(self) -> dict:
        """The recipe fields, checked; raises ValueError naming the bad field and the fix."""
        lr_factor = validation.positive_float("lr_factor", self.lr_factor, "e.g. --lr_factor=0.1")
        if lr_factor >= 1:
            raise ValueError(
                f"Expected `lr_factor` to be < 1 (it multiplies the LR), got {lr_factor!r}. "
                "Fix: e.g. --lr_factor=0.1."
            )
        block, rprelu = check_block(self.block, self.rprelu)
        return dict(
            epochs=validation.positive_int(
                "epochs", self.epochs, hint="pass e.g. --epochs=300 (the paper's)"
            ),
            batch_size=validation.positive_int(
                "batch_size", self.batch_size, hint="pass e.g. --batch_size=128"
            ),
            learning_rate=validation.positive_float(
                "learning_rate", self.learning_rate, "e.g. --learning_rate=0.001"
            ),
            optimizer=validation.choice("optimizer", self.optimizer, OPTIMIZERS),
            lr_patience=validation.positive_int(
                "lr_patience", self.lr_patience, hint="pass e.g. --lr_patience=15"
            ),
            lr_factor=lr_factor,
            augment=validation.choice("augment", self.augment, AUGMENT_CHOICES),
            seed=validation.positive_int("seed", self.seed, minimum=0),
            fused=fused_from_flag(self.fused),
            block=block,
            rprelu=rprelu,
        )

    def recipe(self) -> "Recipe":
        """Only the recipe of this config (e.g. of a TrainConfig)."""
        return Recipe(**{name: getattr(self, name) for name in recipe_fields()})


def recipe_fields() -> tuple:
    """The names of the recipe's fields, in order."""
    return tuple(field.name for field in dataclasses.fields(Recipe))
