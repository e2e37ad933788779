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
checkpoints and resume after a crash (see training/callbacks.py). The config is in
training/config.py, the report in training/report.py.
"""

import os
import time

import tensorflow as tf

from larq_tentacle.core.registry import build, get_spec
from larq_tentacle.core.serialization import load_model
from larq_tentacle.core.template import tentaclize
from larq_tentacle.data import pipeline as data
from larq_tentacle.training import callbacks, distributed
from larq_tentacle.training.config import TrainConfig, check_workdir
from larq_tentacle.training.report import (
    LOSS,
    data_summary,
    evaluate_run,
    run_report,
    summary_table,
)
from larq_tentacle.training.tracing import skip_autograph
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.seeding import seed_everything


def make_optimizer(config: TrainConfig) -> tf.keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return tf.keras.optimizers.SGD(config.learning_rate, momentum=0.9)
    return tf.keras.optimizers.Adam(config.learning_rate)


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
    float_model = load_model(RunFolder(config.init_from).best_model, compile=False)
    expected = (tuple(input_shape), num_classes)
    found = (tuple(float_model.input_shape[1:]), int(float_model.output_shape[-1]))
    if found != expected:
        raise ValueError(
            f"--init_from={config.init_from!r} holds a model for input {found[0]} with {found[1]} "
            f"classes, but this run needs input {expected[0]} with {expected[1]} classes. "
            "Fix: train the float run "
            "on the same dataset and --input_size."
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


def _compile(model, config):
    with model.distribute_strategy.scope():
        model.compile(optimizer=make_optimizer(config), loss=LOSS, metrics=["accuracy"])
    skip_autograph(model)


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


def fit_model(
    model: tf.keras.Model,
    bundle_or_datasets,
    *,
    config: TrainConfig,
    workdir,
    sample_weight=None,
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
    history.initial_epoch = (
        run_log.initial_epoch if run_log.initial_epoch is not None else initial_epoch
    )
    return history


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
    seed_everything(config.seed)
    # Bad data (a missing folder, a corrupt image) fails here, before the run folder exists.
    bundle, input_shape = _load_data(config, verbose=verbose)
    run.make()
    run.remove_stale_temporaries()
    run.write_json(run.config, config.to_dict())
    run.write_json(run.preprocessing, bundle.preprocessing)
    with strategy.scope():
        model = build_model(config, input_shape=input_shape, num_classes=bundle.num_classes)

    history = fit_model(model, bundle, config=config, workdir=workdir, verbose=verbose)
    rows = callbacks.read_history(run.history)
    report = run_report(
        config,
        bundle,
        rows,
        scores=evaluate_run(run.path, bundle, config),
        input_shape=input_shape,
        resumed_from_epoch=getattr(history, "initial_epoch", len(rows)),
        strategy=strategy,
        started=started,
    )
    run.write_json(run.report, report)
    if verbose:
        print(summary_table([report]))
    return report
