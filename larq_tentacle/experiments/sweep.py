"""The paper's experiments as one resumable sweep: Fig. 3, the Pareto view and Table 2.

For one model and dataset, `run_sweep` trains the FP32 baseline, TentacleNets for a
list of tentacle counts, the two BENN baselines for a list of ensemble sizes and the
int8 CNN baseline for a list of channel widths, with several seeds, all through
`training.train` / `training.fit_model` (the same recipe for every method). Every
finished point is written to `<workdir>/points/<id>.json` at once, so a rerun skips it
(`plan`); `results.render` then writes the CSVs, the plots and Table 2.

Every training run keeps its folder under `<workdir>/runs/`: the point id for an FP32
or TentacleNet point, `<method>_pool_s<seed>` for a BENN pool (`<method>_best_pool_s<seed>`
with the best recipe; the point id for partition bagging), with a `member<k>` folder and
`member<k>.h5` per member; an int8 point's folder (`int8_w<width>_s<seed>`) holds its
training run and `int8.tflite` (experiments/int8_baseline.py).

With a `best_recipe` (experiments/best_recipe.py) the TentacleNet and bagging points are
trained twice, with the paper's recipe and the best one; a best recipe with
`teacher=fp32` distils every such point, and every bagging member, from the seed's FP32
point (`teacher_dir`), which the plan trains first.
"""

import dataclasses
import gc
import os
import time
from typing import List

import numpy as np
import tensorflow as tf

from larq_tentacle.core.registry import get_spec
from larq_tentacle.core.serialization import load_model
from larq_tentacle.core.size import displayed_kb, paper_size_kb
from larq_tentacle.data import pipeline as data
from larq_tentacle.data import streaming
from larq_tentacle.experiments import ensembles
from larq_tentacle.experiments.best_recipe import TEACHER_KEY
from larq_tentacle.experiments.int8_baseline import train_int8_point
from larq_tentacle.experiments.plan import plan, point_id
from larq_tentacle.experiments.results import render, write_csv
from larq_tentacle.experiments.sweep_config import SweepConfig, check_workdir
from larq_tentacle.experiments.sweep_folder import SweepFolder
from larq_tentacle.training import callbacks, distillation
from larq_tentacle.training import loop as training
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.utils import atomic
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.seeding import seed_everything


def run_sweep(
    config: SweepConfig, workdir, *, progress: bool = True, verbose: int = 0, command: str = None
) -> dict:
    """Train every point not yet in `workdir`, then render the CSV, plots and table.

    !!! example
        ```python
        from larq_tentacle import experiments
        config = experiments.SweepConfig(model="nin", dataset="digits", input_size=8,
                                         tentacles=[1, 2, 4], bagging=[1, 2, 4],
                                         boosting=[1, 2, 4], seeds=[0, 1, 2], epochs=15)
        experiments.run_sweep(config, "runs/sweep_digits")
        ```

    # Returns
        The `render` result: paths of the written files and the Table 2 rows.
    """
    if not isinstance(config, SweepConfig):
        raise TypeError(f"run_sweep expects a SweepConfig, got {type(config).__name__}.")
    config = config.resolved()
    folder = SweepFolder(workdir)
    workdir = folder.path
    os.makedirs(folder.points, exist_ok=True)
    check_workdir(workdir, config)
    jobs = plan(config)
    total = sum(len(job["points"]) for job in jobs)
    done = {p for job in jobs for p in job["points"] if os.path.exists(folder.point(p))}
    bar = _progress_bar(total, initial=len(done), enabled=progress)
    started = time.time()
    try:
        for job in jobs:
            if all(p in done for p in job["points"]):
                continue
            bar.set_description(f"{job['method']} n={job['n']} seed={job['seed']}")
            if job["kind"] == "train":
                records = [_train_point(config, workdir, job, verbose=verbose)]
            elif job["kind"] == "int8":
                records = [train_int8_point(config, workdir, job, verbose=verbose)]
            else:
                records = _pool_points(config, workdir, job, verbose=verbose)
            for record in records:
                if record["point"] not in done:
                    atomic.write_json(folder.point(record["point"]), record)
                    done.add(record["point"])
                    bar.update(1)
            # The CSV after every job is cheap; plots and table once at the end
            # (`render` or `apps/sweep.py --render_only` draws them at any time).
            write_csv(workdir)
            _release_keras_state()
    finally:
        bar.close()
    return render(workdir, command=command, session_wall_time_s=time.time() - started)


def _release_keras_state() -> None:
    """Free what a finished job's models left in Keras's global graph and caches.

    Without it a long sweep grew by about 100 MB per point (9.8 GB after 95 points of
    the 5-seed digits sweep) until the machine swapped; with it the last 24 points of
    that sweep (int8 exports, bagging pools) still grew 0.8 -> 1.8 GB, so some growth is
    left (converter, interpreters). Every job builds its models afresh and seeds
    itself, so nothing it needs is lost.
    """
    tf.keras.backend.clear_session()
    gc.collect()


def _progress_bar(total, *, initial, enabled):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with tensorflow-datasets; without it, no bar
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="point", dynamic_ncols=True)


class _NoBar:
    def set_description(self, text):
        pass

    def update(self, n):
        pass

    def close(self):
        pass


def teacher_dir(workdir, seed: int) -> str:
    """The run folder of the seed's FP32 point: the teacher of its best-recipe points."""
    return SweepFolder(workdir).run(point_id("fp32", 1, seed)).path


def job_config(config: SweepConfig, workdir, job: dict, **overrides) -> TrainConfig:
    """The TrainConfig a job's runs train with: its recipe, its seed, its teacher."""
    recipe = job.get("recipe", "paper")
    if recipe == "best" and TEACHER_KEY in config.best_recipe:
        overrides.setdefault("teacher", teacher_dir(workdir, job["seed"]))
    overrides.setdefault("seed", job["seed"])
    return config.train_config(recipe=recipe, **overrides)


def _base_record(config: SweepConfig, job: dict, n: int) -> dict:
    recipe = job.get("recipe", "paper")
    point = point_id(job["method"], n, job["seed"], recipe)
    return dict(model=config.model, dataset=config.dataset, method=job["method"], n=n,
                seed=job["seed"], recipe=recipe, point=point)


def _teacher_record(train_config: TrainConfig, seed: int) -> dict:
    """The point's teacher as a point id (None without distillation)."""
    return dict(teacher=point_id("fp32", 1, seed) if train_config.teacher else None)


def _train_point(config: SweepConfig, workdir, job: dict, *, verbose: int) -> dict:
    """Train one FP32 or TentacleNet point with `training.train`."""
    if job["method"] == "fp32":
        train_config = config.train_config(precision="float", seed=job["seed"], fp32_accuracy=None)
    else:
        train_config = job_config(config, workdir, job, tentacles=job["n"])
    run = SweepFolder(workdir).run(job["points"][0])
    report = training.train(train_config, run.path, verbose=verbose)
    record = _base_record(config, job, job["n"])
    record.update(_teacher_record(train_config, job["seed"]))
    record.update(
        test_accuracy=report["test_accuracy"],
        paper_kb=report["paper_size_kb"],
        paper_kb_exact=report["paper_size_kb_exact"],
        wall_time_s=report["wall_time_s"],
        epochs_completed=report["epochs_completed"],
        member_accuracies=report.get("tentacle_accuracies"),
        input_shape=report["input_shape"],
        learning_rate=report.get("learning_rate"),
    )
    if report.get("lr_search"):
        record["lr_search"] = report["lr_search"]
    return record


def member_fit(config: SweepConfig, bundle, seed: int, augment, verbose: int, *,
               pool_config: TrainConfig = None, teacher=None):
    """`fit` for ensembles: `training.fit_stages` on the member's data, best weights kept.

    `pool_config` is the TrainConfig of the pool's recipe (default: the paper's, of
    `seed`), `teacher` the loaded model its members distil from (with a teacher recipe).
    """
    pool_config = pool_config or config.train_config(tentacles=1, seed=seed)

    def fit(model, x, y, *, sample_weight=None, index=1, workdir=None):
        started = time.time()
        member_seed = seed * 1000 + index
        train_config = dataclasses.replace(pool_config, seed=member_seed).resolved()
        train_data = data.make_dataset(
            x, y, batch_size=train_config.batch_size, training=True, seed=member_seed,
            augment=augment, sample_weight=sample_weight,
        )
        training.fit_stages(model, (train_data, bundle.validation), config=train_config,
                            workdir=workdir, teacher=teacher, verbose=verbose)
        # Score the weights with the lowest val_loss, as `training.train` does for every
        # other point.
        run = RunFolder(workdir)
        best = load_model(run.best_model, compile=False)
        model.set_weights(best.get_weights())
        epochs = len(callbacks.read_history(run.history))
        if train_config.stages == 2:
            epochs += len(callbacks.read_history(RunFolder(run.file("stage1")).history))
        run.write_json(
            run.member_report, dict(wall_time_s=time.time() - started, epochs_completed=epochs)
        )

    return fit


def _pool_points(config: SweepConfig, workdir, job: dict, *, verbose: int) -> List[dict]:
    """Train (or reload) one BENN pool and score every ensemble size it serves."""
    seed = job["seed"]
    pool_config = job_config(config, workdir, job, tentacles=1)
    bundle, input_shape, augment = _pool_data(config, pool_config)
    partition = job["method"] == "bagging" and config.sampling == "partition"
    tag = "" if job.get("recipe", "paper") == "paper" else f"_{job['recipe']}"
    name = job["points"][0] if partition else f"{job['method']}{tag}_pool_s{seed}"
    folder = SweepFolder(workdir)
    pool_dir = folder.run(name).path
    teacher = None
    if pool_config.teacher:
        teacher = distillation.load_teacher(
            pool_config.teacher, input_shape=input_shape, num_classes=bundle.num_classes
        )
    fit = member_fit(config, bundle, seed, augment, verbose, pool_config=pool_config,
                     teacher=teacher)
    result = _train_pool(config, job, bundle, input_shape, pool_config, fit, pool_dir)
    records = _score_sizes(config, job, result, bundle.arrays, pool_dir, input_shape)
    for record in records:
        record.update(_teacher_record(pool_config, seed))
    # The largest ensemble as one deployable object (members + vote in one graph).
    largest = result.prefix(job["n"])
    ensembles.save(largest, folder.ensemble(name, job["method"], job["n"]))
    return records


def _pool_data(config: SweepConfig, train_config: TrainConfig):
    """(dataset bundle with in-memory arrays, input shape, augmentation) of a pool's members."""
    train_config = train_config.resolved()
    seed = train_config.seed
    spec = get_spec(config.model)
    source = data.open_dataset(
        train_config.dataset, data_dir=config.data_dir, seed=seed,
        skip_bad_images=config.skip_bad_images,
    )
    input_shape = data.fit_input_shape(source, spec.input_shape, input_size=config.input_size)
    augment = data.training_augmentation(source, train_config.augment)
    seed_everything(seed)
    bundle = data.load_dataset(
        source, input_shape=input_shape, batch_size=train_config.batch_size,
        seed=seed, data_dir=config.data_dir, augment=augment, cache_mb=config.cache_mb,
    )
    # Bagging and boosting resample single images: a streamed dataset must fit in memory.
    arrays = streaming.to_arrays(bundle, limit_mb=config.cache_mb)
    return dataclasses.replace(bundle, arrays=arrays), input_shape, augment


def _train_pool(config: SweepConfig, job: dict, bundle, input_shape, pool_config, fit,
                pool_dir) -> ensembles.BennResult:
    """The job's largest ensemble; members already in `pool_dir` are reloaded."""
    seed = job["seed"]
    builder = ensembles.member_builder(
        config.model, seed=seed, num_classes=bundle.num_classes, input_shape=input_shape,
        init=config.init, model_options=config.model_options, block=pool_config.block,
        rprelu=pool_config.rprelu,
    )
    arrays = bundle.arrays
    if job["method"] == "bagging":
        return ensembles.train_bagging(
            builder, arrays.x_train, arrays.y_train, members=job["n"], fit=fit,
            sampling=config.sampling, vote=config.vote, seed=seed, workdir=pool_dir,
        )
    return ensembles.train_boosting(
        builder, arrays.x_train, arrays.y_train, members=job["n"], fit=fit,
        num_classes=bundle.num_classes, workdir=pool_dir,
    )


def _score_sizes(config: SweepConfig, job: dict, result: ensembles.BennResult, arrays,
                 pool_dir, input_shape) -> List[dict]:
    """One point per ensemble size n of the job: the vote of the pool's first n members."""
    probabilities = np.stack(
        [m.predict(arrays.x_test, batch_size=256, verbose=0) for m in result.members]
    )
    member_accuracy = [float(np.mean(np.argmax(p, -1) == arrays.y_test)) for p in probabilities]
    members = [RunFolder(pool_dir).member(i) for i in range(1, len(result.members) + 1)]
    member_runs = [member.read_json(member.member_report) for member in members]
    one_bnn_kb = paper_size_kb(result.members[0], exact=True)
    records = []
    for n in job["sizes"]:
        record = _base_record(config, job, n)
        record.update(
            test_accuracy=_vote_accuracy(result, probabilities[:n], arrays.y_test),
            paper_kb=displayed_kb(n * one_bnn_kb),
            paper_kb_exact=n * one_bnn_kb,
            wall_time_s=float(sum(run["wall_time_s"] for run in member_runs[:n])),
            epochs_completed=int(sum(run["epochs_completed"] for run in member_runs[:n])),
            member_accuracies=member_accuracy[:n],
            input_shape=list(input_shape),
            alphas=list(result.alphas[:n]) if result.alphas else None,
        )
        records.append(record)
    return records


def _vote_accuracy(result: ensembles.BennResult, probabilities, labels) -> float:
    """Test accuracy of the vote of the first len(probabilities) members."""
    n = len(probabilities)
    weights = result.alphas[:n] if result.vote == "weighted" else None
    if weights is not None and sum(weights) <= 0:
        scores = np.mean(probabilities, axis=0)  # no member beats chance: no vote at all
    else:
        scores = ensembles.combine(probabilities, vote=result.vote, member_weights=weights)
    return float(np.mean(np.argmax(scores, -1) == labels))
