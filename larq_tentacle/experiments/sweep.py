"""The paper's experiments as one resumable sweep: Fig. 3, the Pareto view and Table 2.

For one model and dataset, `run_sweep` trains the FP32 baseline, TentacleNets for a
list of tentacle counts and the two BENN baselines for a list of ensemble sizes, with
several seeds, all through `training.train` / `training.fit_model` (the same recipe
for every method). Every finished point is written to `<workdir>/points/<id>.json` at
once, so a rerun skips it; `render` then writes

    sweep.csv               one row per (method, n, seed)
    summary.csv             mean / std / min / max over seeds per (method, n)
    fig3_delta.png          Δ accuracy vs FP32 as a function of n (Fig. 3)
    accuracy_vs_kb.png      accuracy vs the paper's size for every method (Pareto view)
    table2.md               Table 2: each method at break-even (or its best), kB, saving

Points and cost. A BENN of N members is the first N members of a larger ensemble:
bootstrap bagging draws member k's sample from (seed, k) alone and SAMME is
sequential, so one pool of max(N) members per seed scores every N of the list
(its wall time is the sum of its first N members' times). Partition bagging
splits the data by N, so it trains one ensemble per N.

Δ is measured against the FP32 baseline's mean test accuracy over the seeds (or the
`fp32_accuracy` given), in percentage points, as in the paper's Fig. 3 and Table 2.
"""

import csv
import dataclasses
import io
import json
import math
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from larq_tentacle.utils import atomic
from larq_tentacle.utils import validation
from larq_tentacle.utils.tables import markdown_table
from larq_tentacle.core.serialization import load_model
from larq_tentacle.core.size import paper_size_kb

METHODS = ("fp32", "tentaclenet", "bagging", "boosting")
LABELS = {"fp32": "FP32", "tentaclenet": "TentacleNet", "bagging": "BENN bagging", "boosting": "BENN boosting"}
POINTS_DIR = "points"
RUNS_DIR = "runs"
SWEEP_CONFIG = "sweep_config.json"
CSV_COLUMNS = (
    "model", "dataset", "method", "n", "seed", "test_accuracy", "fp32_accuracy", "delta_pp",
    "paper_kb", "paper_kb_exact", "wall_time_s", "epochs_completed", "member_accuracies",
    "input_shape", "point",
)
SUMMARY_COLUMNS = (
    "method", "n", "seeds", "accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max",
    "delta_pp_mean", "delta_pp_std", "paper_kb", "wall_time_s_mean",
)


@dataclasses.dataclass
class SweepConfig:
    """What to sweep and how to train each point (the fields of TrainConfig it forwards).

    # Arguments
        model, dataset, data_dir, input_size, model_options: as in `TrainConfig`.
        tentacles: tentacle counts of the TentacleNet points (1 = the BNN).
        bagging, boosting: ensemble sizes N of the BENN points (empty: skip the method).
        seeds: every point is trained once per seed.
        epochs, batch_size, learning_rate, optimizer, lr_patience, lr_factor, augment,
            init: the training recipe, shared by every method.
        sampling: bagging's "bootstrap" (with replacement) or "partition" (disjoint parts).
        vote: bagging's "average" (softmax) or "majority".
        fp32_accuracy: a known FP32 test accuracy (0..1); then no FP32 point is trained.
    """

    model: str
    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    tentacles: Sequence[int] = (1, 2, 3, 4, 5)
    bagging: Sequence[int] = (1, 2, 3, 4, 5)
    boosting: Sequence[int] = (1, 2, 3, 4, 5)
    seeds: Sequence[int] = (0, 1, 2)
    epochs: int = 300
    batch_size: int = 128
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    lr_patience: int = 15
    lr_factor: float = 0.1
    augment: str = "default"
    init: str = "hadamard"
    input_size: Optional[int] = None
    model_options: dict = dataclasses.field(default_factory=dict)
    sampling: str = "bootstrap"
    vote: str = "average"
    fp32_accuracy: Optional[float] = None

    def resolved(self) -> "SweepConfig":
        """A checked copy (lists sorted and deduplicated); errors name the bad field."""
        from larq_tentacle.experiments import ensembles

        def counts(name, values, *, minimum=1):
            if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range)):
                raise ValueError(f"Expected `{name}` to be a list of integers, got {values!r}. Fix: e.g. {name}=[1, 2, 3].")
            return tuple(sorted({validation.positive_int(name, v, minimum=minimum) for v in values}))

        config = dataclasses.replace(
            self,
            tentacles=counts("tentacles", self.tentacles),
            bagging=counts("bagging", self.bagging),
            boosting=counts("boosting", self.boosting),
            seeds=counts("seeds", self.seeds, minimum=0),
            sampling=validation.choice("sampling", self.sampling, ensembles.SAMPLINGS),
            vote=validation.choice("vote", self.vote, ensembles.BAGGING_VOTES),
            model_options=dict(self.model_options or {}),
        )
        if not config.seeds:
            raise ValueError("`seeds` is empty. Fix: pass at least one seed, e.g. seeds=[0, 1, 2].")
        if not (config.tentacles or config.bagging or config.boosting):
            raise ValueError("Nothing to sweep: tentacles, bagging and boosting are all empty.")
        # TrainConfig checks every training field and fills in the dataset.
        train = config.train_config(tentacles=1, seed=config.seeds[0]).resolved()
        return dataclasses.replace(config, dataset=train.dataset)

    def train_config(self, **overrides):
        from larq_tentacle.training.loop import TrainConfig

        fields = dict(
            model=self.model,
            dataset=self.dataset,
            data_dir=self.data_dir,
            init=self.init,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            optimizer=self.optimizer,
            lr_patience=self.lr_patience,
            lr_factor=self.lr_factor,
            augment=self.augment,
            input_size=self.input_size,
            model_options=dict(self.model_options),
            fp32_accuracy=self.fp32_accuracy,
        )
        fields.update(overrides)
        if fields.get("precision") == "float":
            fields["init"] = None
        return TrainConfig(**fields)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def point_id(method: str, n: int, seed: int) -> str:
    return f"{method}_n{n}_s{seed}"


def plan(config: SweepConfig) -> List[dict]:
    """The jobs of a sweep, in the order they run: each trains one model or one BENN pool.

    Seeds are the outer loop, so a sweep stopped early still has whole curves.
    """
    jobs = []
    for seed in config.seeds:
        if config.fp32_accuracy is None:
            jobs.append(dict(kind="train", method="fp32", n=1, seed=seed, points=[point_id("fp32", 1, seed)]))
        for n in config.tentacles:
            jobs.append(dict(kind="train", method="tentaclenet", n=n, seed=seed, points=[point_id("tentaclenet", n, seed)]))
        for method in ("bagging", "boosting"):
            sizes = getattr(config, method)
            if not sizes:
                continue
            if method == "bagging" and config.sampling == "partition":
                for n in sizes:
                    jobs.append(dict(kind="pool", method=method, n=n, sizes=[n], seed=seed, points=[point_id(method, n, seed)]))
            else:
                jobs.append(
                    dict(kind="pool", method=method, n=max(sizes), sizes=list(sizes), seed=seed,
                         points=[point_id(method, n, seed) for n in sizes])
                )
    return jobs


_EXTENSIBLE = ("tentacles", "bagging", "boosting", "seeds")


def check_workdir(workdir, config: SweepConfig) -> None:
    """A workdir belongs to one sweep; extending the lists or seeds is allowed.

    The stored config keeps the union of every list run in the workdir, so it
    describes all its points (also when processes run different seeds).
    """
    path = os.path.join(workdir, SWEEP_CONFIG)
    current = config.to_dict()
    if os.path.exists(path):
        with open(path) as file:
            previous = json.load(file)
        fixed = [k for k in previous if k not in _EXTENSIBLE + ("data_dir",)]
        changed = [k for k in fixed if previous.get(k) != current.get(k)]
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
            raise ValueError(
                f"The workdir {workdir!r} holds a different sweep ({details}). Fix: pass a new "
                "workdir, or change only tentacles/bagging/boosting/seeds to extend this one."
            )
        for key in _EXTENSIBLE:
            current[key] = sorted(set(previous.get(key, [])) | set(current[key]))
    atomic.write_json(path, current)


def run_sweep(config: SweepConfig, workdir, *, progress: bool = True, verbose: int = 0, command: str = None) -> dict:
    """Train every point not yet in `workdir`, then render the CSV, plots and table.

    !!! example
        ```python
        from larq_tentacle.experiments import sweep as experiments
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
    workdir = os.path.expanduser(os.fspath(workdir))
    os.makedirs(os.path.join(workdir, POINTS_DIR), exist_ok=True)
    check_workdir(workdir, config)
    jobs = plan(config)
    total = sum(len(job["points"]) for job in jobs)
    done = {p for job in jobs for p in job["points"] if os.path.exists(_point_path(workdir, p))}
    bar = _progress_bar(total, initial=len(done), enabled=progress)
    started = time.time()
    try:
        for job in jobs:
            if all(p in done for p in job["points"]):
                continue
            bar.set_description(f"{job['method']} n={job['n']} seed={job['seed']}")
            if job["kind"] == "train":
                records = [_train_point(config, workdir, job, verbose=verbose)]
            else:
                records = _pool_points(config, workdir, job, verbose=verbose)
            for record in records:
                if record["point"] not in done:
                    atomic.write_json(_point_path(workdir, record["point"]), record)
                    done.add(record["point"])
                    bar.update(1)
            # The CSV after every job is cheap; plots and table once at the end
            # (`render` or `apps/sweep.py --render_only` draws them at any time).
            write_csv(workdir)
    finally:
        bar.close()
    return render(workdir, command=command, session_wall_time_s=time.time() - started)


def _point_path(workdir, point: str) -> str:
    return os.path.join(workdir, POINTS_DIR, f"{point}.json")


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


def _base_record(config: SweepConfig, job: dict, n: int) -> dict:
    return dict(model=config.model, dataset=config.dataset, method=job["method"], n=n, seed=job["seed"],
                point=point_id(job["method"], n, job["seed"]))


def _train_point(config: SweepConfig, workdir, job: dict, *, verbose: int) -> dict:
    from larq_tentacle.training.loop import train

    if job["method"] == "fp32":
        train_config = config.train_config(precision="float", seed=job["seed"], fp32_accuracy=None)
    else:
        train_config = config.train_config(tentacles=job["n"], seed=job["seed"])
    report = train(train_config, os.path.join(workdir, RUNS_DIR, job["points"][0]), verbose=verbose)
    record = _base_record(config, job, job["n"])
    record.update(
        test_accuracy=report["test_accuracy"],
        paper_kb=report["paper_size_kb"],
        paper_kb_exact=report["paper_size_kb_exact"],
        wall_time_s=report["wall_time_s"],
        epochs_completed=report["epochs_completed"],
        member_accuracies=report.get("tentacle_accuracies"),
        input_shape=report["input_shape"],
    )
    return record


def member_fit(config: SweepConfig, bundle, seed: int, augment, verbose: int):
    """`fit` for ensembles: `training.fit_model` on the member's data, best weights kept."""
    from larq_tentacle.training import callbacks
    from larq_tentacle.data import datasets as data
    from larq_tentacle.training import loop as training

    def fit(model, x, y, *, sample_weight=None, index=1, workdir=None):
        started = time.time()
        member_seed = seed * 1000 + index
        train_config = config.train_config(tentacles=1, seed=member_seed).resolved()
        train_data = data.make_dataset(
            x, y, batch_size=config.batch_size, training=True, seed=member_seed, augment=augment,
            sample_weight=sample_weight,
        )
        training.fit_model(model, (train_data, bundle.validation), config=train_config, workdir=workdir, verbose=verbose)
        # Score the weights with the lowest val_loss, as `training.train` does for every other point.
        best = load_model(os.path.join(workdir, callbacks.BEST_MODEL), compile=False)
        model.set_weights(best.get_weights())
        rows = callbacks.read_history(os.path.join(workdir, callbacks.HISTORY_FILE))
        atomic.write_json(
            os.path.join(workdir, "member.json"),
            dict(wall_time_s=time.time() - started, epochs_completed=len(rows)),
        )

    return fit


def _pool_points(config: SweepConfig, workdir, job: dict, *, verbose: int) -> List[dict]:
    """Train (or reload) one BENN pool and score every ensemble size it serves."""
    import tensorflow as tf

    from larq_tentacle.data import datasets as data
    from larq_tentacle.experiments import ensembles
    from larq_tentacle.core.registry import get_spec

    seed = job["seed"]
    train_config = config.train_config(tentacles=1, seed=seed).resolved()
    spec = get_spec(config.model)
    input_shape = data.fit_input_shape(train_config.dataset, spec.input_shape, input_size=config.input_size)
    augment = data.AUGMENT[train_config.dataset] if config.augment == "default" else config.augment
    augment = None if augment == "none" else augment
    tf.keras.utils.set_random_seed(seed)
    bundle = data.load_dataset(
        train_config.dataset, input_shape=input_shape, batch_size=config.batch_size, seed=seed,
        data_dir=config.data_dir, augment=augment,
    )
    arrays = bundle.arrays
    builder = ensembles.member_builder(
        config.model, seed=seed, num_classes=bundle.num_classes, input_shape=input_shape,
        init=config.init, model_options=config.model_options,
    )
    fit = member_fit(config, bundle, seed, augment, verbose)
    partition = job["method"] == "bagging" and config.sampling == "partition"
    name = job["points"][0] if partition else f"{job['method']}_pool_s{seed}"
    pool_dir = os.path.join(workdir, RUNS_DIR, name)
    if job["method"] == "bagging":
        result = ensembles.train_bagging(
            builder, arrays.x_train, arrays.y_train, members=job["n"], fit=fit, sampling=config.sampling,
            vote=config.vote, seed=seed, workdir=pool_dir,
        )
    else:
        result = ensembles.train_boosting(
            builder, arrays.x_train, arrays.y_train, members=job["n"], fit=fit, num_classes=bundle.num_classes,
            workdir=pool_dir,
        )
    probabilities = np.stack([m.predict(arrays.x_test, batch_size=256, verbose=0) for m in result.members])
    member_accuracy = [float(np.mean(np.argmax(p, -1) == arrays.y_test)) for p in probabilities]
    member_times = []
    for index in range(1, len(result.members) + 1):
        with open(os.path.join(pool_dir, f"member{index}", "member.json")) as file:
            member_times.append(json.load(file))
    one_bnn_kb = paper_size_kb(result.members[0], exact=True)
    records = []
    for n in job["sizes"]:
        weights = result.alphas[:n] if result.vote == "weighted" else None
        if weights is not None and sum(weights) <= 0:
            scores = np.mean(probabilities[:n], axis=0)  # no member beats chance: no vote at all
        else:
            scores = ensembles.combine(probabilities[:n], vote=result.vote, member_weights=weights)
        record = _base_record(config, job, n)
        record.update(
            test_accuracy=float(np.mean(np.argmax(scores, -1) == arrays.y_test)),
            paper_kb=math.ceil(n * one_bnn_kb - 1e-9),
            paper_kb_exact=n * one_bnn_kb,
            wall_time_s=float(sum(t["wall_time_s"] for t in member_times[:n])),
            epochs_completed=int(sum(t["epochs_completed"] for t in member_times[:n])),
            member_accuracies=member_accuracy[:n],
            input_shape=list(input_shape),
            alphas=list(result.alphas[:n]) if result.alphas else None,
        )
        records.append(record)
    # The largest ensemble as one deployable object (members + vote in one graph).
    largest = result.prefix(job["n"])
    ensembles.save(largest, os.path.join(pool_dir, f"benn_{job['method']}_n{job['n']}.h5"))
    return records


# ---------------------------------------------------------------------------
# Results: CSV, summary, plots, Table 2


def load_points(workdir) -> List[dict]:
    directory = os.path.join(os.fspath(workdir), POINTS_DIR)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No sweep points in {directory!r}. Fix: run the sweep with this workdir first.")
    points = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json") and not name.startswith("."):
            with open(os.path.join(directory, name)) as file:
                points.append(json.load(file))
    return points


def fp32_reference(points: List[dict], fp32_accuracy: Optional[float] = None) -> Optional[float]:
    """The FP32 accuracy Δ is measured against: the given one, else the mean over FP32 seeds."""
    if fp32_accuracy is not None:
        return float(fp32_accuracy)
    accuracies = [p["test_accuracy"] for p in points if p["method"] == "fp32"]
    return float(np.mean(accuracies)) if accuracies else None


def rows_with_delta(points: List[dict], reference: Optional[float]) -> List[dict]:
    rows = []
    order = {m: i for i, m in enumerate(METHODS)}
    for point in sorted(points, key=lambda p: (order.get(p["method"], 9), p["n"], p["seed"])):
        row = {column: point.get(column) for column in CSV_COLUMNS}
        row["fp32_accuracy"] = reference
        row["delta_pp"] = None if reference is None else 100.0 * (point["test_accuracy"] - reference)
        rows.append(row)
    return rows


def summarize(rows: List[dict]) -> List[dict]:
    """Mean / std / min / max over seeds per (method, n)."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["n"]), []).append(row)
    summary = []
    for (method, n), members in groups.items():
        accuracy = np.array([100.0 * r["test_accuracy"] for r in members])
        deltas = [r["delta_pp"] for r in members if r["delta_pp"] is not None]
        summary.append(
            dict(
                method=method,
                n=n,
                seeds=len(members),
                accuracy_mean=float(accuracy.mean()),
                accuracy_std=float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
                accuracy_min=float(accuracy.min()),
                accuracy_max=float(accuracy.max()),
                delta_pp_mean=float(np.mean(deltas)) if deltas else None,
                delta_pp_std=float(np.std(deltas, ddof=1)) if len(deltas) > 1 else (0.0 if deltas else None),
                paper_kb=members[0]["paper_kb"],
                wall_time_s_mean=float(np.mean([r["wall_time_s"] for r in members])),
            )
        )
    return summary


def table2_rows(summary: List[dict]) -> List[dict]:
    """Each method at its break-even point (smallest n with mean Δ ≥ 0), else at its best accuracy.

    The saving is TentacleNet's size relative to the smallest BENN row, as in the paper,
    where every method reached FP32. It is only given when TentacleNet and at least one
    BENN method broke even: sizes of rows at unequal accuracy say nothing (for those,
    see `equal_memory_markdown`).
    """
    rows = []
    for method in ("bagging", "boosting", "tentaclenet"):
        candidates = sorted((s for s in summary if s["method"] == method), key=lambda s: s["n"])
        if not candidates:
            continue
        even = [s for s in candidates if s["delta_pp_mean"] is not None and s["delta_pp_mean"] >= 0]
        if even:
            chosen, criterion = even[0], "break-even"
        else:
            best = max(s["accuracy_mean"] for s in candidates)
            chosen, criterion = next(s for s in candidates if s["accuracy_mean"] == best), "best accuracy"
        rows.append(dict(chosen, criterion=criterion))
    benn_even = [r for r in rows if r["method"] != "tentaclenet" and r["criterion"] == "break-even"]
    for row in rows:
        row["saving"] = ""
        if row["method"] != "tentaclenet":
            continue
        if row["criterion"] != "break-even":
            row["saving"] = "n/a (TentacleNet did not reach FP32)"
        elif not benn_even:
            row["saving"] = "n/a (no BENN reached FP32)"
        else:
            smallest = min(r["paper_kb"] for r in benn_even)
            row["saving"] = f"{100.0 * (1 - row['paper_kb'] / smallest):.1f}% vs {smallest} kB"
    return rows


def equal_memory_markdown(summary: List[dict]) -> str:
    """Each TentacleNet point next to the BENN point of each method closest in paper kB."""
    benn = {m: [s for s in summary if s["method"] == m] for m in ("bagging", "boosting")}

    def nearest(method, kb):
        if not benn[method]:
            return "-"
        row = min(benn[method], key=lambda s: (abs(s["paper_kb"] - kb), s["n"]))
        return f"N={row['n']} ({row['paper_kb']} kB): {_accuracy_cell(row)}"

    rows = [
        dict(n=s["n"], kb=s["paper_kb"], tn=_accuracy_cell(s), bagging=nearest("bagging", s["paper_kb"]),
             boosting=nearest("boosting", s["paper_kb"]))
        for s in sorted((s for s in summary if s["method"] == "tentaclenet"), key=lambda s: s["n"])
    ]
    return markdown_table(
        rows,
        ["n", "kb", "tn", "bagging", "boosting"],
        ["tentacles", "paper kB", "TentacleNet accuracy % (mean ± std)", "BENN bagging, nearest size",
         "BENN boosting, nearest size"],
    )


def _accuracy_cell(row) -> str:
    return f"{row['accuracy_mean']:.2f} ± {row['accuracy_std']:.2f}"


def _fmt(value, spec="+.2f"):
    return "n/a" if value is None else format(value, spec)


def table2_markdown(summary: List[dict], *, fp32_row: Optional[dict] = None) -> str:
    rows = []
    for row in table2_rows(summary):
        rows.append(
            dict(
                method=LABELS[row["method"]],
                n=row["n"],
                delta=f"{_fmt(row['delta_pp_mean'])} ± {_fmt(row['delta_pp_std'], '.2f')}",
                accuracy=f"{row['accuracy_mean']:.2f}",
                kb=row["paper_kb"],
                criterion=row["criterion"],
                saving=row["saving"],
            )
        )
    if fp32_row is not None:
        rows.insert(0, dict(method="FP32", n="", delta="0 (reference)", accuracy=f"{fp32_row['accuracy_mean']:.2f}",
                            kb=fp32_row["paper_kb"], criterion="", saving=""))
    return markdown_table(
        rows,
        ["method", "n", "delta", "accuracy", "kb", "criterion", "saving"],
        ["method", "#ensemble / tentacles", "Δ vs FP32 (pp, mean ± std)", "accuracy %", "paper kB",
         "chosen at", "TentacleNet saving vs smallest BENN"],
    )


def summary_markdown(summary: List[dict]) -> str:
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for s in sorted(summary, key=lambda s: (order.get(s["method"], 9), s["n"])):
        rows.append(
            dict(
                method=LABELS[s["method"]],
                n=s["n"],
                seeds=s["seeds"],
                accuracy=_accuracy_cell(s),
                range=f"{s['accuracy_min']:.2f} – {s['accuracy_max']:.2f}",
                delta=_fmt(s["delta_pp_mean"]),
                kb=s["paper_kb"],
                time=f"{s['wall_time_s_mean']:.0f}",
            )
        )
    return markdown_table(
        rows,
        ["method", "n", "seeds", "accuracy", "range", "delta", "kb", "time"],
        ["method", "n", "seeds", "accuracy % (mean ± std)", "min – max", "Δ vs FP32 (pp)", "paper kB", "wall s / point"],
    )


def _write_csv(path, rows, columns) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v) for k, v in row.items()})
    atomic.write_text(path, buffer.getvalue())


_STYLE = {
    "tentaclenet": dict(color="tab:blue", marker="o", linestyle="-"),
    "bagging": dict(color="tab:orange", marker="s", linestyle="--"),
    "boosting": dict(color="tab:green", marker="^", linestyle="--"),
}


def _save_figure(figure, path) -> None:
    with atomic.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")


def plot_delta(summary: List[dict], path, *, title: str) -> None:
    """Fig. 3: Δ accuracy vs FP32 against n, mean with min–max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for method in ("tentaclenet", "bagging", "boosting"):
        rows = sorted((s for s in summary if s["method"] == method and s["delta_pp_mean"] is not None), key=lambda s: s["n"])
        if not rows:
            continue
        n = [s["n"] for s in rows]
        mean = np.array([s["delta_pp_mean"] for s in rows])
        offset = mean - np.array([s["accuracy_mean"] for s in rows])  # accuracy -> Δ
        low = np.array([s["accuracy_min"] for s in rows]) + offset
        high = np.array([s["accuracy_max"] for s in rows]) + offset
        style = _STYLE[method]
        label = LABELS[method] + (" (n = tentacles)" if method == "tentaclenet" else " (n = members)")
        axis.plot(n, mean, label=label, **style)
        axis.fill_between(n, low, high, color=style["color"], alpha=0.15, linewidth=0)
    axis.axhline(0.0, color="black", linestyle=":", linewidth=1, label="break-even (FP32)")
    axis.set_xlabel("n (tentacles / ensemble members)")
    axis.set_ylabel("Δ accuracy vs FP32 (pp)")
    axis.set_title(title + "\nmean over seeds, band = min–max", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    _save_figure(figure, path)
    plt.close(figure)


def plot_pareto(summary: List[dict], path, *, title: str, fp32: Optional[dict]) -> None:
    """Accuracy against the paper's model size: the memory/accuracy trade-off per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for method in ("tentaclenet", "bagging", "boosting"):
        rows = sorted((s for s in summary if s["method"] == method), key=lambda s: s["paper_kb"])
        if not rows:
            continue
        kb = [s["paper_kb"] for s in rows]
        mean = [s["accuracy_mean"] for s in rows]
        std = [s["accuracy_std"] for s in rows]
        style = _STYLE[method]
        axis.errorbar(kb, mean, yerr=std, label=LABELS[method], capsize=2, **style)
        for s in rows:
            axis.annotate(str(s["n"]), (s["paper_kb"], s["accuracy_mean"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points", color=style["color"])
    if fp32 is not None:
        axis.axhline(fp32["accuracy_mean"], color="black", linestyle=":", linewidth=1, label="FP32 accuracy")
        axis.plot([fp32["paper_kb"]], [fp32["accuracy_mean"]], marker="*", color="black", markersize=10, linestyle="none", label="FP32")
    axis.set_xscale("log")
    axis.set_xlabel("paper model size (kB, log scale)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title + "\nmean ± std over seeds, labels = n", fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    _save_figure(figure, path)
    plt.close(figure)


def write_csv(workdir) -> str:
    """Write sweep.csv from the finished points; returns its path."""
    workdir = os.fspath(workdir)
    config = _read_config(workdir)
    rows = rows_with_delta(load_points(workdir), fp32_reference(load_points(workdir), config.get("fp32_accuracy")))
    path = os.path.join(workdir, "sweep.csv")
    _write_csv(path, rows, CSV_COLUMNS)
    return path


def _read_config(workdir) -> dict:
    path = os.path.join(workdir, SWEEP_CONFIG)
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        return json.load(file)


def render(workdir, *, command: Optional[str] = None, session_wall_time_s: Optional[float] = None) -> dict:
    """Write sweep.csv, summary.csv, the two PNGs and table2.md from the finished points."""
    workdir = os.fspath(workdir)
    points = load_points(workdir)
    config = _read_config(workdir)
    reference = fp32_reference(points, config.get("fp32_accuracy"))
    rows = rows_with_delta(points, reference)
    summary = summarize(rows)
    fp32 = next((s for s in summary if s["method"] == "fp32"), None)
    if fp32 is None and reference is not None:
        fp32 = dict(accuracy_mean=100.0 * reference, paper_kb=None)
    paths = {name: os.path.join(workdir, name) for name in ("sweep.csv", "summary.csv", "fig3_delta.png", "accuracy_vs_kb.png", "table2.md")}
    _write_csv(paths["sweep.csv"], rows, CSV_COLUMNS)
    _write_csv(paths["summary.csv"], summary, SUMMARY_COLUMNS)
    model = points[0]["model"] if points else config.get("model", "?")
    dataset = points[0]["dataset"] if points else config.get("dataset", "?")
    title = f"{model} on {dataset}"
    plot_delta(summary, paths["fig3_delta.png"], title=title)
    plot_pareto(summary, paths["accuracy_vs_kb.png"], title=title, fp32=fp32 if fp32 and fp32.get("paper_kb") else None)
    compute = sum(p["wall_time_s"] for p in points)
    lines = [
        f"# TentacleNet vs BENN: {title}",
        "",
        "Table 2 of the paper, recomputed: each method at its break-even point with FP32 "
        "(smallest n whose mean Δ ≥ 0), otherwise at its best mean accuracy. Δ in percentage "
        "points against the FP32 reference "
        + ("(given)." if config.get("fp32_accuracy") is not None else "(mean FP32 test accuracy over the seeds)."),
        "",
        table2_markdown(summary, fp32_row=fp32 if fp32 and fp32.get("paper_kb") else None),
        "",
        "## At about equal memory",
        "",
        equal_memory_markdown(summary),
        "",
        "## Every point (mean over seeds)",
        "",
        summary_markdown(summary),
        "",
        f"Points: {len(points)}; training compute (sum of per-point wall times): {compute / 60:.1f} min.",
    ]
    if session_wall_time_s is not None:
        lines.append(f"Wall time of the last `run_sweep` session: {session_wall_time_s / 60:.1f} min.")
    if command:
        lines += ["", "Command:", "", "```", command, "```"]
    if config:
        lines += ["", "Sweep config:", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```"]
    atomic.write_text(paths["table2.md"], "\n".join(lines) + "\n")
    return dict(paths=paths, table2=table2_rows(summary), summary=summary, fp32_reference=reference)
