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
from typing import Optional, Union

from larq_tentacle.core.blocks import BLOCKS, check_block
from larq_tentacle.utils import validation

OPTIMIZERS = ("adam", "sgd", "bop")
STAGES = (1, 2)
AUGMENT_CHOICES = ("default", "none", "crop", "crop_flip")
FUSED_FLAG_VALUES = {"auto": "auto", "true": True, "false": False}


def lr_grid_from_flag(text) -> Optional[list]:
    """`--lr_grid=1e-3,3e-3,1e-2` as a sorted list of distinct learning rates; "" -> None."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    values = []
    for part in parts:
        if isinstance(part, str) and not part.strip():
            continue
        try:
            value = float(part)
        except (TypeError, ValueError):
            value = None
        if value is None or not value > 0 or value == float("inf"):
            raise ValueError(
                f"Expected `lr_grid` to be positive learning rates, got {text!r} ({part!r} is "
                "not one). Fix: e.g. --lr_grid=1e-3,3e-3,1e-2."
            )
        values.append(value)
    return sorted(set(values)) or None


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
        optimizer: "adam" (the paper's XNOR-Net recipe), "sgd" (momentum 0.9) or "bop"
            (Larq's Bop flips the binary kernels, Adam at `learning_rate` trains the rest).
        lr_patience, lr_factor: ReduceLROnPlateau on val_loss (the paper: 15, 0.1).
        augment: "default" (the dataset's usual augmentation), "none", "crop", "crop_flip".
        seed: seeds weights, shuffling, augmentation and the validation hold-out.
        fused: the TentacleNet's form while training: False (branched), True (one grouped
            binary conv per tentacle layer) or "auto" (the faster on this device), as
            `lt.build(..., fused=...)` takes it.
        distill_alpha, distill_temperature, distill_tentacles: distillation from a teacher
            (`TrainConfig.teacher`), see `training/distillation.py`: the loss is
            (1 - alpha)·CE + alpha·T²·KL(teacher/T ‖ student/T); `distill_tentacles` adds
            each tentacle's own logits to the KL term. Unused without a teacher.
        stages, stage1_epochs: 2 trains first with binary activations and float weights for
            `stage1_epochs` (default: half the epochs), then the binary model from those
            weights for the rest (see `training/stages.py`).
        deterministic: TensorFlow's deterministic ops (`enable_op_determinism`): the same
            seed on the same machine gives the same numbers. Once on, they stay on for the
            process (TensorFlow has no public switch back).
        lr_grid: learning rates to choose the FP32 baseline's from (precision="float" only):
            each trains the full recipe, the best validation accuracy (ties: lower
            validation loss) is kept; `learning_rate` is then not used.
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
    # Hinton et al. (2015) found a "considerably lower weight" on the hard labels best, and
    # T = 4 softens a confident teacher enough to show which wrong classes it finds close.
    distill_alpha: float = described(
        0.9, "Weight of the teacher's soft targets in the loss, in [0, 1] (needs --teacher)."
    )
    distill_temperature: float = described(
        4.0, "Softmax temperature T of the distillation term, > 0 (needs --teacher)."
    )
    distill_tentacles: bool = described(
        False, "Also distil into each tentacle's own logits (needs --teacher, n >= 2)."
    )
    stages: int = described(
        1, "1, or 2: binary activations with float weights first, then binary weights."
    )
    stage1_epochs: Optional[int] = described(
        None, "Epochs of stage 1 with --stages=2 (default: half of --epochs)."
    )
    deterministic: bool = described(
        True,
        "Deterministic TensorFlow ops: the same seed on the same machine gives the same "
        "numbers (--nodeterministic: faster, not repeatable).",
    )
    lr_grid: Optional[list] = described(
        None,
        "FP32 only: learning rates to choose from on the validation split, e.g. "
        "1e-3,3e-3,1e-2 (each trains the full recipe; the best val accuracy is kept).",
        from_flag=lr_grid_from_flag,
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
            **self._resolved_distillation(),
            **self._resolved_stages(),
            deterministic=validation.boolean("deterministic", self.deterministic),
            lr_grid=lr_grid_from_flag(self.lr_grid),
            block=block,
            rprelu=rprelu,
        )

    def _resolved_distillation(self) -> dict:
        alpha = validation.positive_float(
            "distill_alpha", self.distill_alpha, "e.g. --distill_alpha=0.9", zero=True
        )
        if alpha > 1:
            raise ValueError(
                f"Expected `distill_alpha` in [0, 1] (the soft targets' share of the loss), got "
                f"{alpha!r}. Fix: e.g. --distill_alpha=0.9."
            )
        return dict(
            distill_alpha=alpha,
            distill_temperature=validation.positive_float(
                "distill_temperature", self.distill_temperature, "e.g. --distill_temperature=4"
            ),
            distill_tentacles=validation.boolean("distill_tentacles", self.distill_tentacles),
        )

    def _resolved_stages(self) -> dict:
        stages = self.stages
        if stages not in STAGES or isinstance(stages, bool):
            raise ValueError(f"Expected `stages` to be 1 or 2, got {stages!r}. Fix: --stages=2.")
        if stages == 2 and self.epochs < 2:
            raise ValueError(
                f"--stages=2 splits the epochs between two stages, got epochs={self.epochs}. "
                "Fix: pass --epochs=2 or more."
            )
        if self.stage1_epochs is None:
            return dict(stages=stages, stage1_epochs=None)
        if stages == 1:
            raise ValueError(
                f"stage1_epochs={self.stage1_epochs!r} is the length of stage 1 of two. "
                "Fix: add --stages=2 or drop --stage1_epochs."
            )
        last = self.epochs - 1
        stage1_epochs = validation.positive_int(
            "stage1_epochs", self.stage1_epochs,
            hint=f"pass 1..{last} (stage 2 needs at least one of the {self.epochs} epochs)",
        )
        if stage1_epochs > last:
            raise ValueError(
                f"stage1_epochs={stage1_epochs} leaves no epoch of --epochs={self.epochs} for "
                f"stage 2. Fix: pass --stage1_epochs of at most {last} or raise --epochs."
            )
        return dict(stages=stages, stage1_epochs=stage1_epochs)

    def stage1_length(self) -> int:
        """Epochs of stage 1 (0 with one stage): `stage1_epochs`, or half of `epochs`."""
        if self.stages == 1:
            return 0
        return self.stage1_epochs or max(1, self.epochs // 2)

    def recipe(self) -> "Recipe":
        """Only the recipe of this config (e.g. of a TrainConfig)."""
        return Recipe(**{name: getattr(self, name) for name in recipe_fields()})


def recipe_fields() -> tuple:
    """The names of the recipe's fields, in order."""
    return tuple(field.name for field in dataclasses.fields(Recipe))
