"""Train FP32 baselines, BNNs and TentacleNets with the paper's recipe.

`train(config, workdir)` is what `apps/train.py` runs: it loads the dataset, builds the
model, trains it with `fit_model` and writes the run's workdir (file names: RunFolder):

    config.json         the resolved TrainConfig
    preprocessing.json  how raw images become model inputs (see larq_tentacle.data)
    best_model.h5       weights with the lowest val_loss (the test number comes from it)
    last_model.h5       weights after the last completed epoch
    history.csv         one row per epoch (loss, accuracy, val_*, lr, epoch_time_s)
    tensorboard/        TensorBoard logs
    backup/             Keras BackupAndRestore state while a run is unfinished
    report.json         test accuracy, Δ vs FP32, paper size, wall time, versions, ...

`fit_model` is the reusable part (other code, e.g. BENN ensembles, trains its members the
same way): Adam, `ReduceLROnPlateau(val_loss, lr_factor, lr_patience)`, atomic
checkpoints and resume after a crash (see larq_tentacle.callbacks).
"""

import dataclasses
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.training import callbacks
from larq_tentacle.data import datasets as data
from larq_tentacle.training import distributed
from larq_tentacle.utils import validation
from larq_tentacle.core.layout import layout
from larq_tentacle.core.registry import PRECISIONS, build, get_spec
from larq_tentacle.utils.tables import markdown_table
from larq_tentacle.core.serialization import load_model
from larq_tentacle.core.size import larq_memory_kb, paper_size_kb
from larq_tentacle.core.template import INITS, tentaclize
from larq_tentacle.training.recipe import Recipe, described, positive_float
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.versions import versions


LOSS = "sparse_categorical_crossentropy"
# Fields that may change when the same workdir is run again (resume / extend a run).
_RESUMABLE_CHANGES = ("epochs", "fp32_accuracy", "data_dir", "strategy")


@dataclasses.dataclass
class TrainConfig(Recipe):
    """Everything that defines a training run; `apps/train.py` has one flag per field.

    # Arguments
        model: a registered model (`lt.list_models()`).
        dataset: "cifar10", "cifar100", "fer2013" or "digits"; default: the model's own.
        data_dir: where the dataset lives (tfds data_dir, folder of fer2013.csv).
        tentacles: binary tentacles (1 = the plain BNN).
        precision: "binary" or "float" (the FP32 baseline).
        init: "hadamard" or "copy"; default "copy" with `init_from`, else "hadamard".
        strategy: "default", "mirrored" (local devices) or "multi_worker" (TF_CONFIG).
        input_size: train at input_size x input_size instead of the model's input size.
        init_from: workdir of a trained float run; its best model becomes the TentacleNet's
            stem, head and (with init="copy") tentacles.
        fp32_accuracy: test accuracy (0..1) of the FP32 baseline, for `delta_vs_fp32`.
        model_options: architecture options of the model (e.g. projection_shortcuts=2).
        epochs, batch_size, learning_rate, optimizer, lr_patience, lr_factor, augment, seed,
            fused: the training recipe (keywords only), see `Recipe`.
    """

    model: str = dataclasses.field(metadata=dict(help="Registered model: fernet, nin, resnet9."))
    dataset: Optional[str] = described(
        None, "cifar10, cifar100, fer2013 or digits (default: the model's own)."
    )
    data_dir: Optional[str] = described(
        None, "Where the dataset lives (tfds data_dir; folder of fer2013.csv)."
    )
    tentacles: int = described(1, "Binary tentacles (1 = the plain BNN).")
    precision: str = described("binary", "binary or float (the FP32 baseline).")
    init: Optional[str] = described(
        None, "hadamard or copy (default: copy with --init_from, else hadamard)."
    )
    strategy: str = described("default", "default, mirrored or multi_worker (reads TF_CONFIG).")
    input_size: Optional[int] = described(
        None, "Train at input_size x input_size (default: the model's size)."
    )
    init_from: Optional[str] = described(
        None, "Workdir of a trained --precision=float run to start from."
    )
    fp32_accuracy: Optional[float] = described(
        None, "Test accuracy (0..1) of the FP32 baseline, for the Δ column."
    )
    model_options: dict = described(
        {}, "Architecture option key=value, e.g. projection_shortcuts=2.",
        flag="model_option", from_flag=validation.model_options,
    )

    def resolved(self) -> "TrainConfig":
        """A checked copy with defaults filled in; raises ValueError naming the bad field."""
        spec = get_spec(self.model)
        dataset = data.check_name(spec.dataset if self.dataset is None else self.dataset)
        precision = validation.choice("precision", self.precision, PRECISIONS)
        tentacles = validation.positive_int("tentacles", self.tentacles, hint="pass e.g. --tentacles=3")
        if precision == "float" and tentacles != 1:
            raise ValueError(
                f"precision='float' trains the single FP32 baseline, so tentacles must be 1, got "
                f"{tentacles}. Fix: drop --tentacles or use --precision=binary."
            )
        recipe = self.resolved_recipe()
        if precision == "float" and recipe["fused"] is not False:
            raise ValueError(
                f"precision='float' trains the FP32 baseline, which has no tentacles to fuse, got "
                f"fused={recipe['fused']!r}. Fix: drop --fused or use --precision=binary."
            )
        init_from = self._checked_init_from(precision)
        init = ("copy" if init_from else "hadamard") if self.init is None else self.init
        init = validation.choice("init", init, INITS)
        if init == "copy" and init_from is None and precision == "binary":
            raise ValueError(
                "--init=copy copies a trained float model into the tentacles; it needs --init_from=<float run "
                "workdir>. Fix: add --init_from or use --init=hadamard."
            )
        if self.input_size is not None:
            validation.positive_int("input_size", self.input_size, minimum=spec.min_input_size,
                                    hint=f"{self.model} needs at least {spec.min_input_size}x{spec.min_input_size} pixels")
        model_options = dict(self.model_options or {})
        validation.no_unknown(model_options, spec.options(), where=f"model_options of {self.model!r}")
        return dataclasses.replace(
            self,
            dataset=dataset,
            data_dir=os.path.expanduser(self.data_dir) if self.data_dir else None,
            precision=precision,
            tentacles=tentacles,
            init=init,
            init_from=init_from,
            strategy=distributed.check_name(self.strategy),
            fp32_accuracy=self._checked_fp32_accuracy(),
            model_options=model_options,
            **recipe,
        )

    def _checked_init_from(self, precision) -> Optional[str]:
        if not self.init_from:
            return None
        init_from = os.path.expanduser(self.init_from)
        if precision == "float":
            raise ValueError("--init_from starts a binary model from a float run; it needs --precision=binary.")
        best = RunFolder(init_from).best_model
        if not os.path.isfile(best):
            raise FileNotFoundError(
                f"--init_from={self.init_from!r} has no {RunFolder.BEST_MODEL} (looked at {best!r}). "
                "Fix: pass the workdir of a finished --precision=float run."
            )
        return init_from

    def _checked_fp32_accuracy(self) -> Optional[float]:
        if self.fp32_accuracy is None:
            return None
        accuracy = positive_float("fp32_accuracy", self.fp32_accuracy, "e.g. --fp32_accuracy=0.8811", zero=True)
        if accuracy > 1:
            raise ValueError(
                f"Expected `fp32_accuracy` as a fraction 0..1, got {accuracy!r}. "
                f"Fix: pass {accuracy / 100:g} for {accuracy:g}%."
            )
        return accuracy

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """A config from `to_dict()` output, e.g. a run's config.json (older ones lack new fields)."""
        validation.no_unknown(values, [f.name for f in dataclasses.fields(cls)], where="TrainConfig")
        return cls(**values)

    def variant(self) -> str:
        """'fp32', 'bnn' or 'tn<n>', for names of runs and tables."""
        if self.precision == "float":
            return "fp32"
        return "bnn" if self.tentacles == 1 else f"tn{self.tentacles}"


def default_workdir(config: TrainConfig) -> str:
    """runs/<model>_<dataset>_<fp32|bnn|tn<n>>, used when no workdir is given."""
    config = config.resolved()
    return os.path.join("runs", f"{config.model}_{config.dataset}_{config.variant()}")


def make_optimizer(config: TrainConfig) -> tf.keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return tf.keras.optimizers.SGD(config.learning_rate, momentum=0.9)
    return tf.keras.optimizers.Adam(config.learning_rate)


def build_model(config: TrainConfig, *, input_shape, num_classes: int) -> tf.keras.Model:
    """The FP32 / BNN / TentacleNet the config asks for (inside the caller's strategy scope)."""
    if not config.init_from:
        return build(
            config.model,
            tentacles=config.tentacles,
            precision=config.precision,
            num_classes=num_classes,
            input_shape=input_shape,
            init=config.init,
            seed=config.seed,
            fused=config.fused,
            **config.model_options,
        )
    float_model = load_model(RunFolder(config.init_from).best_model, compile=False)
    expected = (tuple(input_shape), num_classes)
    found = (tuple(float_model.input_shape[1:]), int(float_model.output_shape[-1]))
    if found != expected:
        raise ValueError(
            f"--init_from={config.init_from!r} holds a model for input {found[0]} with {found[1]} classes, "
            f"but this run needs input {expected[0]} with {expected[1]} classes. Fix: train the float run "
            "on the same dataset and --input_size."
        )
    return tentaclize(
        float_model,
        tentacles=config.tentacles,
        init=config.init,
        seed=config.seed,
        name=f"{config.model}_tentacles{config.tentacles}",
        fused=config.fused,
    )


def _compile(model, config):
    with model.distribute_strategy.scope():
        model.compile(optimizer=make_optimizer(config), loss=LOSS, metrics=["accuracy"])
    skip_autograph(model)


def skip_autograph(model: tf.keras.Model) -> tf.keras.Model:
    """Trace `model`'s train/test/predict steps without AutoGraph (public API), in place.

    Under TF_USE_LEGACY_KERAS=1 AutoGraph converts tf_keras's whole training loop on
    every trace (it skips `keras`, not `tf_keras`); the steps have no Python control
    flow on tensors, so tracing them as plain Python gives the same graph, faster.
    """
    for name in ("train_step", "test_step", "predict_step"):
        step = getattr(model, name)
        if not getattr(step, "_larq_tentacle_unconverted", False):
            unconverted = tf.autograph.experimental.do_not_convert(step)
            unconverted._larq_tentacle_unconverted = True
            setattr(model, name, unconverted)
    return model


def _pipelines(bundle_or_datasets, config: TrainConfig, sample_weight):
    if isinstance(bundle_or_datasets, data.DatasetBundle):
        bundle = bundle_or_datasets
        if sample_weight is None:
            return bundle.train, bundle.validation
        arrays = bundle.arrays
        augment = data.AUGMENT[arrays.preprocessing["dataset"]] if config.augment == "default" else config.augment
        train = data.make_dataset(
            arrays.x_train,
            arrays.y_train,
            batch_size=config.batch_size,
            training=True,
            seed=config.seed,
            augment=None if augment == "none" else augment,
            sample_weight=sample_weight,
        )
        return train, bundle.validation
    if isinstance(bundle_or_datasets, (tuple, list)) and len(bundle_or_datasets) == 2:
        if sample_weight is not None:
            raise ValueError(
                "sample_weight needs the training arrays to rebuild the pipeline. Fix: pass a "
                "DatasetBundle (lt.load_dataset) or put the weights into your training dataset."
            )
        return tuple(bundle_or_datasets)
    raise TypeError(
        "fit_model expects a DatasetBundle or a (train_dataset, validation_dataset) pair, got "
        f"{type(bundle_or_datasets).__name__}."
    )


def _history(rows, model) -> tf.keras.callbacks.History:
    history = tf.keras.callbacks.History()
    history.set_model(model)
    history.epoch = [row["epoch"] - 1 for row in rows]
    for row in rows:
        for key, value in row.items():
            if key != "epoch":
                history.history.setdefault(key, []).append(value)
    return history


def fit_model(
    model: tf.keras.Model, bundle_or_datasets, *, config: TrainConfig, workdir, sample_weight=None, verbose=1
) -> tf.keras.callbacks.History:
    """Compile `model` with the paper's recipe and train it, resumably, in `workdir`.

    Resume: while a run is unfinished, `<workdir>/backup` holds Keras BackupAndRestore
    state, so calling this again with the same workdir continues from the last completed
    epoch. A finished run whose `epochs` grew continues from `last_model.h5` (with a fresh
    optimizer and the LR the schedule had reached); a finished run is not trained again.

    # Arguments
        model: a built model, created in the strategy scope it should train under.
        bundle_or_datasets: a `DatasetBundle` or a `(train, validation)` pair of datasets.
        config: the TrainConfig (epochs, optimizer, LR schedule, seed).
        workdir: folder for history.csv, best_model.h5, last_model.h5, tensorboard/, backup/.
        sample_weight: per-example weights of the training set (needs a DatasetBundle).

    # Returns
        A `History` with every epoch of the run so far (including earlier attempts).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
    strategy = model.distribute_strategy
    run = RunFolder(distributed.worker_dir(workdir, strategy)).make()
    train_data, validation_data = _pipelines(bundle_or_datasets, config, sample_weight)
    _compile(model, config)

    backup_dir, last_model = run.backup, run.last_model
    done = callbacks.read_history(run.history)
    initial_epoch = 0
    # BackupAndRestore empties (but keeps) its folder when a fit ends.
    unfinished = os.path.isdir(backup_dir) and bool(os.listdir(backup_dir))
    if not unfinished and done and os.path.isfile(last_model):
        # A finished run (BackupAndRestore removed its backup): continue from its last weights.
        model.load_weights(last_model)
        initial_epoch = max(row["epoch"] for row in done)
        if initial_epoch >= config.epochs:
            return _history([row for row in done if row["epoch"] <= config.epochs], model)

    run_log = callbacks.RunLog(run.path)
    fit_callbacks = [
        run_log,
        callbacks.AtomicCheckpoint(run.path, run_log, monitor="val_loss"),
        callbacks.ResumablePlateau(
            run_log,
            initial_lr=config.learning_rate,
            monitor="val_loss",
            factor=config.lr_factor,
            patience=config.lr_patience,
            verbose=1 if verbose else 0,
        ),
        tf.keras.callbacks.TensorBoard(run.tensorboard, write_graph=False, profile_batch=0),
        # Last, so that everything above is on disk before an epoch counts as done.
        tf.keras.callbacks.BackupAndRestore(backup_dir),
    ]
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=fit_callbacks,
        verbose=verbose,
    )
    history = _history(callbacks.read_history(run.history), model)
    history.initial_epoch = run_log.initial_epoch if run_log.initial_epoch is not None else initial_epoch
    return history


def tentacle_accuracies(model: tf.keras.Model, x, y, *, batch_size: int = 256) -> Optional[list]:
    """Each tentacle's own accuracy, for the head of Fig. 2-a.

    Tentacle i alone is its logits through the trained head (`head_dense`) with every
    other tentacle's logits set to zero. (The argmax of a tentacle's raw logits means
    little: the head may mix them with any signs.) None when the model has no
    per-tentacle logits (FP32, BNN, head of Fig. 2-b, fused tentacles).
    """
    try:
        structure = layout(model)
    except ValueError:
        return None
    if structure.head_variant != "a" or structure.tentacles < 2:
        return None
    try:
        concat, dense = model.get_layer("head_concat"), model.get_layer("head_dense")
    except ValueError:  # a form without per-tentacle logits (e.g. fused tentacles)
        return None
    features = skip_autograph(tf.keras.Model(model.inputs, concat.input))
    outputs = features.predict(x, batch_size=batch_size, verbose=0)
    accuracies = []
    for index in range(len(outputs)):
        alone = [out if j == index else np.zeros_like(out) for j, out in enumerate(outputs)]
        scores = dense(np.concatenate(alone, axis=-1)).numpy()
        accuracies.append(float(np.mean(np.argmax(scores, axis=-1) == y)))
    return accuracies


def evaluate_run(run_dir, bundle: data.DatasetBundle, config: TrainConfig) -> dict:
    """Score the run's best model on the test split, each tentacle alone too (Fig. 2-a)."""
    # A plain copy outside any strategy: every worker scores it alone, no collectives.
    model = load_model(RunFolder(run_dir).best_model, compile=False)
    model.compile(loss=LOSS, metrics=["accuracy"])
    skip_autograph(model)
    arrays = bundle.arrays
    loss, accuracy = model.evaluate(arrays.x_test, arrays.y_test, batch_size=256, verbose=0)
    try:
        head_variant = layout(model).head_variant
    except ValueError:  # the FP32 baseline has no stem/tentacles/head
        head_variant = None
    result = dict(
        test_accuracy=float(accuracy),
        test_loss=float(loss),
        head_variant=head_variant,
        paper_size_kb=paper_size_kb(model),
        paper_size_kb_exact=paper_size_kb(model, exact=True),
        larq_memory_kb=larq_memory_kb(model),
    )
    per_tentacle = tentacle_accuracies(model, arrays.x_test, arrays.y_test)
    if per_tentacle is not None:
        result.update(tentacle_accuracies=per_tentacle, ensemble_accuracy=float(accuracy))
    return result


def _check_workdir(run: RunFolder, config: TrainConfig) -> None:
    previous = run.read_json(run.config)
    if previous is None:
        return
    current = config.to_dict()
    # A config.json written before a field existed ran with that field's default.
    defaults = TrainConfig(model=config.model).to_dict()
    previous = {**defaults, **previous}
    changed = sorted(
        key for key in set(previous) | set(current)
        if key not in _RESUMABLE_CHANGES and previous.get(key) != current.get(key)
    )
    if changed:
        details = ", ".join(f"{key}: {previous.get(key)!r} -> {current.get(key)!r}" for key in changed)
        raise ValueError(
            f"The workdir {run.path!r} holds a different run ({details}). Fix: pass a new --workdir, "
            "or delete that folder to start over."
        )


def train(config: TrainConfig, workdir, *, verbose=1) -> dict:
    """Train the model `config` describes and write the run into `workdir`.

    Run it again with the same config and workdir after a crash and it resumes from the
    last completed epoch (`epochs` may grow to extend a finished run).

    !!! example
        ```python
        report = lt.train(lt.TrainConfig(model="nin", dataset="digits", tentacles=3,
                                         input_size=8, epochs=30), "runs/nin3")
        print(report["test_accuracy"])
        ```

    # Returns
        The report (also written to `<workdir>/report.json`).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train() expects a TrainConfig, got {type(config).__name__}. Fix: lt.TrainConfig(model=...).")
    started = time.time()
    config = config.resolved()
    workdir = os.path.expanduser(os.fspath(workdir))
    # Before any other TensorFlow work: multi-worker collectives are set up at startup.
    strategy = distributed.make_strategy(config.strategy)
    run = RunFolder(distributed.worker_dir(workdir, strategy)).make()
    _check_workdir(run, config)
    run.remove_stale_temporaries()
    run.write_json(run.config, config.to_dict())
    tf.keras.utils.set_random_seed(config.seed)

    spec = get_spec(config.model)
    input_shape = data.fit_input_shape(config.dataset, spec.input_shape, input_size=config.input_size)
    augment = {"default": "default", "none": None}.get(config.augment, config.augment)
    bundle = data.load_dataset(
        config.dataset,
        input_shape=input_shape,
        batch_size=config.batch_size,
        seed=config.seed,
        data_dir=config.data_dir,
        augment=augment,
    )
    run.write_json(run.preprocessing, bundle.preprocessing)
    with strategy.scope():
        model = build_model(config, input_shape=input_shape, num_classes=bundle.num_classes)

    history = fit_model(model, bundle, config=config, workdir=workdir, verbose=verbose)
    rows = callbacks.read_history(run.history)
    best = min(rows, key=lambda row: row["val_loss"]) if rows else {}
    scores = evaluate_run(run.path, bundle, config)
    fp32_accuracy = config.fp32_accuracy
    if fp32_accuracy is None and config.init_from:
        fp32_accuracy = _report_accuracy(config.init_from)
    report = dict(
        model=config.model,
        dataset=config.dataset,
        variant=config.variant(),
        tentacles=config.tentacles,
        precision=config.precision,
        init=config.init,
        init_from=config.init_from,
        input_shape=list(input_shape),
        num_classes=bundle.num_classes,
        split_sizes=bundle.arrays.sizes(),
        **scores,
        fp32_accuracy=fp32_accuracy,
        delta_vs_fp32=None if fp32_accuracy is None else scores["test_accuracy"] - fp32_accuracy,
        epochs=config.epochs,
        epochs_completed=len(rows),
        resumed_from_epoch=getattr(history, "initial_epoch", len(rows)),
        best_epoch=best.get("epoch"),
        best_val_loss=best.get("val_loss"),
        best_val_accuracy=best.get("val_accuracy"),
        final_lr=rows[-1]["lr"] if rows else None,
        train_time_s=float(sum(row.get("epoch_time_s", 0.0) for row in rows)),
        wall_time_s=time.time() - started,
        strategy=config.strategy,
        num_workers=distributed.num_workers(strategy),
        num_replicas=strategy.num_replicas_in_sync,
        seed=config.seed,
        versions=versions(),
    )
    run.write_json(run.report, report)
    if verbose:
        print(summary_table([report]))
    return report


def _report_accuracy(run_dir) -> Optional[float]:
    run = RunFolder(run_dir)
    report = run.read_json(run.report)
    return None if report is None else report.get("test_accuracy")


def summary_table(reports) -> str:
    """A markdown table of run reports: accuracy, Δ vs FP32, paper kB, epochs, time."""
    rows = []
    for report in reports:
        delta = report.get("delta_vs_fp32")
        per_tentacle = report.get("tentacle_accuracies")
        rows.append(
            dict(
                model=report["model"],
                dataset=report["dataset"],
                variant=report["variant"],
                accuracy=f"{100 * report['test_accuracy']:.2f}",
                delta="n/a" if delta is None else f"{100 * delta:+.2f}",
                kb=report["paper_size_kb"],
                epochs=f"{report['epochs_completed']}/{report['epochs']}",
                time=f"{report['wall_time_s']:.0f}",
                tentacles="" if not per_tentacle else " ".join(f"{100 * a:.1f}" for a in per_tentacle),
            )
        )
    return markdown_table(
        rows,
        ["model", "dataset", "variant", "accuracy", "delta", "kb", "epochs", "time", "tentacles"],
        ["model", "dataset", "variant", "test acc %", "Δ vs FP32 (pp)", "paper kB", "epochs", "wall s", "each tentacle alone %"],
    )
