"""What a sweep trains, checked, and its copy in the workdir.

`SweepConfig` names one model and dataset, the lists to sweep (tentacle counts, BENN
ensemble sizes, seeds) and the one training recipe every method shares;
`train_config` turns it into the `TrainConfig` of one training run. A workdir keeps
the config in `sweep_config.json`: it belongs to one sweep, whose lists and seeds
may grow (`check_workdir`).
"""

import dataclasses
from typing import Optional, Sequence

from larq_tentacle.data.sources import check_name, short_name
from larq_tentacle.experiments.best_recipe import (
    RECIPES,
    TEACHER_KEY,
    apply_best_recipe,
    check_best_recipe,
)
from larq_tentacle.experiments.ensembles import BAGGING_VOTES, SAMPLINGS
from larq_tentacle.experiments.sweep_folder import SweepFolder
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.recipe import Recipe, lr_grid_from_flag
from larq_tentacle.utils import validation

# The fields a rerun in the same workdir may change: it then extends the sweep.
_EXTENSIBLE = ("tentacles", "bagging", "boosting", "seeds", "int8_widths")


@dataclasses.dataclass
class SweepConfig(Recipe):
    """What to sweep, and the one training recipe (`Recipe`) every point of it trains with.

    # Arguments
        model, dataset, data_dir, cache_mb, skip_bad_images, input_size, model_options: as
            in `TrainConfig`.
        tentacles: tentacle counts of the TentacleNet points (1 = the BNN).
        bagging, boosting: ensemble sizes N of the BENN points (empty: skip the method).
        seeds: every point is trained once per seed; each point's recipe takes its seed
            from this list, so the recipe's own `seed` is not used (and must stay 0).
        init: the tentacle init of the TentacleNet points.
        sampling: bagging's "bootstrap" (with replacement) or "partition" (disjoint parts).
        vote: bagging's "average" (softmax) or "majority".
        fp32_accuracy: a known FP32 test accuracy (0..1); then no FP32 point is trained.
        best_recipe: a second recipe as overrides of this one (`experiments.best_recipe`),
            e.g. dict(block="react", teacher="fp32"): every TentacleNet n and bagging N
            is then also trained with it (points with recipe "best"); empty: none.
        int8_widths: channel widths of the int8 CNN baseline (`experiments.int8_baseline`):
            per width and seed, the float model with its channels times the width,
            trained with the FP32 point's recipe, exported to int8 and scored
            (points with method "int8"); empty: none.
        epochs, batch_size, learning_rate, optimizer, lr_patience, lr_factor, augment,
            fused, deterministic, lr_grid: the training recipe (keywords only), see
            `Recipe`; `fused` is the form the TentacleNet points train in (the FP32 point
            and BENN members have no tentacles to fuse); `lr_grid` chooses the learning
            rate of each seed's FP32 point on its validation split (every other point
            trains with `learning_rate`).
    """

    model: str
    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    cache_mb: float = 512.0
    skip_bad_images: bool = False
    tentacles: Sequence[int] = (1, 2, 3, 4, 5)
    bagging: Sequence[int] = (1, 2, 3, 4, 5)
    boosting: Sequence[int] = (1, 2, 3, 4, 5)
    seeds: Sequence[int] = (0, 1, 2)
    init: str = "hadamard"
    input_size: Optional[int] = None
    model_options: dict = dataclasses.field(default_factory=dict)
    sampling: str = "bootstrap"
    vote: str = "average"
    fp32_accuracy: Optional[float] = None
    best_recipe: dict = dataclasses.field(default_factory=dict)
    int8_widths: Sequence[float] = ()

    def resolved(self) -> "SweepConfig":
        """A checked copy (lists sorted and deduplicated); errors name the bad field."""
        config = dataclasses.replace(
            self,
            tentacles=_counts("tentacles", self.tentacles),
            bagging=_counts("bagging", self.bagging),
            boosting=_counts("boosting", self.boosting),
            seeds=_counts("seeds", self.seeds, minimum=0),
            sampling=validation.choice("sampling", self.sampling, SAMPLINGS),
            vote=validation.choice("vote", self.vote, BAGGING_VOTES),
            model_options=dict(self.model_options or {}),
            lr_grid=lr_grid_from_flag(self.lr_grid),
            int8_widths=_widths(self.int8_widths),
        )
        best = check_best_recipe(self.best_recipe, config)
        config = dataclasses.replace(config, best_recipe=best)
        if TEACHER_KEY in config.best_recipe and config.fp32_accuracy is not None:
            raise ValueError(
                f"best_recipe teacher=fp32 distils from the seed's FP32 point, but "
                f"fp32_accuracy={config.fp32_accuracy!r} skips the FP32 points. Fix: drop "
                "fp32_accuracy, or teacher=fp32 from best_recipe."
            )
        if not config.seeds:
            raise ValueError("`seeds` is empty. Fix: pass at least one seed, e.g. seeds=[0, 1, 2].")
        if config.seed != 0:
            raise ValueError(
                f"A sweep trains every point once per seed of `seeds`; its `seed` is not used, "
                f"got seed={config.seed!r}. Fix: pass seeds=[{config.seed!r}] instead."
            )
        if not (config.tentacles or config.bagging or config.boosting or config.int8_widths):
            raise ValueError(
                "Nothing to sweep: tentacles, bagging, boosting and int8_widths are all empty."
            )
        if config.int8_widths and "width" in config.model_options:
            raise ValueError(
                f"int8_widths={list(config.int8_widths)} scales the base model's channels, but "
                f"model_options already sets width={config.model_options['width']!r}. Fix: "
                "drop width from model_options (int8_widths are relative to the base model)."
            )
        # TrainConfig checks every training field and fills in the dataset.
        train = config.train_config(tentacles=1, seed=config.seeds[0]).resolved()
        return dataclasses.replace(config, dataset=train.dataset)

    def train_config(self, *, recipe: str = "paper", **overrides) -> TrainConfig:
        """The `TrainConfig` of one run of this sweep; `overrides` set its other fields.

        The run trains with this sweep's recipe ("paper") or its `best_recipe` ("best");
        pass its `seed` (one of `seeds`) and, for a best recipe with a teacher, the
        `teacher` (the seed's FP32 run folder).
        """
        recipe = validation.choice("recipe", recipe, RECIPES)
        source = self if recipe == "paper" else apply_best_recipe(self, self.best_recipe)
        if recipe == "best" and TEACHER_KEY in self.best_recipe and not overrides.get("teacher"):
            raise ValueError(
                "The best recipe distils from the seed's FP32 point: pass teacher=<its run "
                "folder> (experiments.sweep.teacher_dir)."
            )
        fields = dict(
            dataclasses.asdict(source.recipe()),
            model=self.model,
            dataset=self.dataset,
            data_dir=self.data_dir,
            cache_mb=self.cache_mb,
            skip_bad_images=self.skip_bad_images,
            init=self.init,
            input_size=self.input_size,
            model_options=dict(self.model_options),
            fp32_accuracy=self.fp32_accuracy,
        )
        fields.update(overrides)
        if fields.get("precision") == "float":
            # The FP32 baseline has no tentacles to initialise or fuse and no binary weights
            # for Bop or a float-weight first stage: it trains with the plain recipe.
            fields.update(init=None, fused=False, stages=1, stage1_epochs=None)
            if fields.get("optimizer") == "bop":
                fields.update(optimizer="adam")
        else:
            # The grid chooses the FP32 reference's LR; the binary points keep the recipe's.
            fields.update(lr_grid=None)
        return TrainConfig(**fields)

    def to_dict(self) -> dict:
        """The config as `sweep_config.json` stores it (without the unused recipe `seed`)."""
        values = dataclasses.asdict(self)
        del values["seed"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def default_workdir(config: SweepConfig) -> str:
    """runs/sweep_<model>_<dataset>, used when no workdir is given."""
    dataset = config.dataset or config.resolved().dataset
    return f"runs/sweep_{config.model}_{short_name(check_name(dataset))}"


def _counts(name, values, *, minimum=1) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range)):
        raise ValueError(
            f"Expected `{name}` to be a list of integers, got {values!r}. "
            f"Fix: e.g. {name}=[1, 2, 3]."
        )
    return tuple(sorted({validation.positive_int(name, v, minimum=minimum) for v in values}))


def _widths(values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ValueError(
            f"Expected `int8_widths` to be a list of positive numbers, got {values!r}. "
            "Fix: e.g. int8_widths=[0.25, 0.5, 1.0]."
        )
    return tuple(sorted({validation.width_multiplier(v) for v in values}))


def check_workdir(workdir, config: SweepConfig) -> None:
    """A workdir belongs to one sweep; extending the lists or seeds is allowed.

    The stored config keeps the union of every list run in the workdir, so it
    describes all its points (also when processes run different seeds).
    """
    folder = SweepFolder(workdir)
    current = config.to_dict()
    previous = folder.read_json(folder.config)
    if previous is not None:
        # A sweep_config.json written before a field existed ran with that field's default.
        known = {**SweepConfig(model=config.model).to_dict(), **previous}
        fixed = [k for k in known if k not in _EXTENSIBLE + ("data_dir", "cache_mb")]
        changed = [k for k in fixed if known.get(k) != current.get(k)]
        if not (known["best_recipe"] and current["best_recipe"]) and "best_recipe" in changed:
            changed.remove("best_recipe")
        if changed:
            details = ", ".join(
                f"{k}: {known.get(k)!r} -> {current.get(k)!r}" for k in changed
            )
            raise ValueError(
                f"The workdir {workdir!r} holds a different sweep ({details}). Fix: pass a new "
                "workdir, or change only tentacles/bagging/boosting/seeds/int8_widths to extend "
                "this one."
            )
        for key in _EXTENSIBLE:
            current[key] = sorted(set(previous.get(key, [])) | set(current[key]))
        # A sweep without a best recipe may get one; a rerun without it keeps the stored.
        current["best_recipe"] = current["best_recipe"] or known["best_recipe"]
    folder.write_json(folder.config, current)


def read_stored_config(workdir) -> dict:
    """The config stored in `workdir` by `check_workdir` (as a dict), or {} if none."""
    folder = SweepFolder(workdir)
    return folder.read_json(folder.config) or {}
