"""Train FP32 baselines, BNNs and TentacleNets with the paper's recipe.

`train(config, workdir)` is what `apps/train.py` runs: it loads the dataset, builds the
model, trains it with `fit_model` and writes the run's workdir (file names: RunFolder):

    config.json         the resolved TrainConfig
    preprocessing.json  how raw images become model inputs (see larq_tentacle.data)
    best_model.h5       weights with the lowest val_loss (the test number comes from it)
    last_model.h5       weights after the last completed epoch
    history.csv         one row per epoch (loss, accuracy, val_*, lr, epoch_time_s)
    int8_model.h5, int8/  with `int8_epochs`: the fine-tuned int8 model and its fine-tune's
                        run folder (training/int8_tuning.py)
    tensorboard/        TensorBoard logs
    backup/             Keras BackupAndRestore state while a run is unfinished
    stage1/             stage 1 of a --stages=2 run (a run folder, see training/stages.py)
    test_predictions.csv  the best model's label and prediction per test image (in order)
    report.json         test accuracy, Δ vs FP32, paper size, wall time, versions, CPU, ...
    lr_grid/lr_<lr>/    with `lr_grid` (FP32 only): one run folder per candidate learning
                        rate; the chosen one's models and history are copied up here

`fit_model` is the reusable part (other code, e.g. BENN ensembles, trains its members the
same way): Adam, `ReduceLROnPlateau(val_loss, lr_factor, lr_patience)`, atomic
checkpoints and resume after a crash (see training/callbacks.py), distillation from a
teacher (training/distillation.py), with TensorFlow's deterministic ops unless
`deterministic=False`. `fit_stages` adds two-stage training (training/stages.py). The
config is in training/config.py, the report in training/report.py.
"""

import dataclasses
import os
import time

import tensorflow as tf

from larq_tentacle.core.registry import build, get_spec
from larq_tentacle.core.template import tentaclize
from larq_tentacle.data import pipeline as data
from larq_tentacle.training import (
    callbacks,
    distillation,
    distributed,
    int8_tuning,
    lr_search,
    stages,
)
from larq_tentacle.training.config import TrainConfig, check_workdir
from larq_tentacle.training.float_runs import load_float_model
from larq_tentacle.training.optimizers import make_optimizer
from larq_tentacle.training.report import (
    LOSS,
    data_summary,
    evaluate_run,
    report_accuracy,
    run_report,
    summary_table,
)
from larq_tentacle.training.tracing import skip_autograph
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.seeding import seed_everything, use_deterministic_ops


def build_model(config: TrainConfig, *, input_shape, num_classes: int) -> tf.keras.Model:
    """The FP32 / BNN / TentacleNet the config asks for (inside the caller's strategy scope)."""
    # The block shapes binary activations; a sweep's FP32 baseline shares the recipe.
    blocks = {} if config.precision == "float" else dict(block=config.block, rprelu=config.rprelu)
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
            **blocks,
            **config.model_options,
        )
    float_model = load_float_model(
        config.init_from, flag="--init_from", input_shape=input_shape, num_classes=num_classes
    )
    return tentaclize(
        float_model,
        tentacles=config.tentacles,
        init=config.init,
        seed=config.seed,
        name=f"{config.model}_tentacles{config.tentacles}",
        fused=config.fused,
        **blocks,
    )


def _trainer(model, teacher, config: TrainConfig) -> tf.keras.Model:
    """`model`, or with a teacher the DistillationModel training it; compiled."""
    with model.distribute_strategy.scope():
        if teacher is not None:
            model = distillation.DistillationModel(
                model,
                teacher,
                alpha=config.distill_alpha,
                temperature=config.distill_temperature,
                tentacles=config.distill_tentacles,
            )
        model.compile(optimizer=make_optimizer(config), loss=LOSS, metrics=["accuracy"])
    return skip_autograph(model)


def _pipelines(bundle_or_datasets, config: TrainConfig, sample_weight):
    if isinstance(bundle_or_datasets, data.DatasetBundle):
        bundle = bundle_or_datasets
        if sample_weight is None:
            return bundle.train, bundle.validation
        arrays = bundle.arrays
        if arrays is None:
            raise ValueError(
                f"sample_weight (boosting) reweights single images, which needs "
                f"{bundle.preprocessing['dataset']} in memory. Fix: pass a bundle with arrays "
                "(lt.data.streaming.to_arrays) or put the weights into your training dataset."
            )
        augment = data.training_augmentation(arrays.preprocessing["dataset"], config.augment)
        train = data.make_dataset(
            arrays.x_train,
            arrays.y_train,
            batch_size=config.batch_size,
            training=True,
            seed=config.seed,
            augment=augment,
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


def _fit_callbacks(run: RunFolder, run_log, config: TrainConfig, *, verbose) -> list:
    """The callbacks of every fit: history, atomic checkpoints, the LR schedule, backup."""
    return [
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
        tf.keras.callbacks.BackupAndRestore(run.backup),
    ]


def fit_model(
    model: tf.keras.Model,
    bundle_or_datasets,
    *,
    config: TrainConfig,
    workdir,
    sample_weight=None,
    teacher=None,
    verbose=1,
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
        teacher: a model to distil from (config's `distill_*`); checkpoints hold `model` alone.

    # Returns
        A `History` with every epoch of the run so far (including earlier attempts).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
    use_deterministic_ops(config.deterministic)
    run = RunFolder(distributed.worker_dir(workdir, model.distribute_strategy)).make()
    train_data, validation_data = _pipelines(bundle_or_datasets, config, sample_weight)
    trainer = _trainer(model, teacher, config)

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
    fit_callbacks = _fit_callbacks(run, run_log, config, verbose=verbose)
    trainer.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=fit_callbacks,
        verbose=verbose,
    )
    history = _history(callbacks.read_history(run.history), model)
    history.initial_epoch = (
        run_log.initial_epoch if run_log.initial_epoch is not None else initial_epoch
    )
    return history


def fit_stages(
    model: tf.keras.Model,
    bundle_or_datasets,
    *,
    config: TrainConfig,
    workdir,
    sample_weight=None,
    teacher=None,
    verbose=1,
) -> tf.keras.callbacks.History:
    """`fit_model`, in the two stages of training/stages.py when `config.stages == 2`.

    Stage 1 trains `stages.float_weight_model(model)` in `<workdir>/stage1/` (unless
    stage 2 has begun: then it is done); `model` then starts from stage 1's best
    weights and trains in `workdir` for the remaining epochs. Both stages resume.

    # Returns
        The `History` of the last stage.
    """
    fit = dict(sample_weight=sample_weight, teacher=teacher, verbose=verbose)
    if config.stages == 1:
        return fit_model(model, bundle_or_datasets, config=config, workdir=workdir, **fit)
    strategy = model.distribute_strategy
    stage1_dir = os.path.join(os.fspath(workdir), stages.STAGE1)
    stage1 = RunFolder(distributed.worker_dir(stage1_dir, strategy))
    stage2 = RunFolder(distributed.worker_dir(workdir, strategy))
    first, second = stages.stage_configs(config, stage1=stage1, stage2=stage2)
    if not stages.stage2_started(stage2):
        with strategy.scope():
            float_model = stages.float_weight_model(model)
        fit_model(float_model, bundle_or_datasets, config=first, workdir=stage1_dir, **fit)
        float_model.load_weights(stage1.best_model)
        stages.copy_weights(float_model, model)
    return fit_model(model, bundle_or_datasets, config=second, workdir=workdir, **fit)


def _recipe_report(config: TrainConfig, stage1: RunFolder, report: dict) -> dict:
    """The report's fields on the optimizer, distillation and stages of the run."""
    distilled = None
    if config.teacher:
        distilled = dict(
            teacher=config.teacher,
            teacher_accuracy=report_accuracy(config.teacher),
            alpha=config.distill_alpha,
            temperature=config.distill_temperature,
            tentacles=config.distill_tentacles,
        )
    fields = dict(optimizer=config.optimizer, distillation=distilled, stages=config.stages)
    if config.stages == 2:
        first = stages.stage1_report(stage1)
        fields.update(
            stage1=first,
            epochs_completed=report["epochs_completed"] + first["epochs_completed"],
            train_time_s=report["train_time_s"] + first["train_time_s"],
        )
    return fields


def _int8_report(config: TrainConfig, run: RunFolder, bundle, *, strategy, verbose) -> dict:
    """With `int8_epochs`: the int8 fine-tune (after the finished float run) and its fields."""
    if not config.int8_epochs:
        return {}
    return int8_tuning.fine_tune_int8(
        config, run, bundle, fit=fit_model, strategy=strategy, verbose=verbose
    )


def _load_data(config: TrainConfig, *, verbose: int):
    """(dataset bundle, input shape) of a run; a folder is scanned once, before training."""
    source = data.open_dataset(
        config.dataset, data_dir=config.data_dir, seed=config.seed,
        skip_bad_images=config.skip_bad_images,
    )
    spec = get_spec(config.model)
    input_shape = data.fit_input_shape(source, spec.input_shape, input_size=config.input_size)
    bundle = data.load_dataset(
        source, input_shape=input_shape, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir, augment=config.augment, cache_mb=config.cache_mb,
    )
    if verbose:
        print(data_summary(bundle))
    return bundle, input_shape


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
        raise TypeError(
            f"train() expects a TrainConfig, got {type(config).__name__}. "
            "Fix: lt.TrainConfig(model=...)."
        )
    started = time.time()
    config = config.resolved()
    workdir = os.path.expanduser(os.fspath(workdir))
    # Before any other TensorFlow work: multi-worker collectives are set up at startup.
    strategy = distributed.make_strategy(config.strategy)
    run = RunFolder(distributed.worker_dir(workdir, strategy))
    check_workdir(run, config)
    search = None
    if config.lr_grid:
        # Each candidate is a full run of its own; the chosen one's files land in `run`,
        # which then holds a finished run that `fit_model` below does not train again.
        search = lr_search.search_learning_rate(config, run.path, train=train, verbose=verbose)
    fit_config = config if search is None else dataclasses.replace(
        config, learning_rate=search["learning_rate"], lr_grid=None
    )
    use_deterministic_ops(config.deterministic)
    seed_everything(config.seed)
    # Bad data (a missing folder, a corrupt image) fails here, before the run folder exists.
    bundle, input_shape = _load_data(config, verbose=verbose)
    teacher = None
    if config.teacher:  # a teacher for other data fails here too
        with strategy.scope():
            teacher = distillation.load_teacher(
                config.teacher, input_shape=input_shape, num_classes=bundle.num_classes
            )
    run.make()
    run.remove_stale_temporaries()
    run.write_json(run.config, config.to_dict())
    run.write_json(run.preprocessing, bundle.preprocessing)
    with strategy.scope():
        model = build_model(config, input_shape=input_shape, num_classes=bundle.num_classes)

    history = fit_stages(
        model, bundle, config=fit_config, workdir=workdir, teacher=teacher, verbose=verbose
    )
    rows = callbacks.read_history(run.history)
    report = run_report(
        fit_config,
        bundle,
        rows,
        scores=evaluate_run(run.path, bundle, config),
        input_shape=input_shape,
        resumed_from_epoch=getattr(history, "initial_epoch", len(rows)),
        strategy=strategy,
        started=started,
    )
    stage1 = RunFolder(distributed.worker_dir(os.path.join(workdir, stages.STAGE1), strategy))
    report.update(_recipe_report(config, stage1, report))
    report.update({} if search is None else dict(lr_grid=config.lr_grid, lr_search=search))
    report.update(_int8_report(fit_config, run, bundle, strategy=strategy, verbose=verbose))
    run.write_json(run.report, report)
    if verbose:
        print(summary_table([report]))
    return report
