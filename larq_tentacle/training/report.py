"""What a finished run reports: test scores, each tentacle alone, and the summary table.

`evaluate_run` scores a run folder's best model on the test split (and writes its
prediction per test image, for paired tests between models); `run_report` is the
report.json `train` writes; `summary_table` prints reports as a markdown table.
"""

import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.core.layout import layout
from larq_tentacle.core.serialization import load_model
from larq_tentacle.core.size import larq_memory_kb, paper_size_kb
from larq_tentacle.data import pipeline as data
from larq_tentacle.training import distributed
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.tracing import skip_autograph
from larq_tentacle.utils import atomic
from larq_tentacle.utils.machine import cpu_info
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.seeding import deterministic_ops
from larq_tentacle.utils.tables import markdown_table
from larq_tentacle.utils.versions import versions

LOSS = "sparse_categorical_crossentropy"


def tentacle_accuracies(
    model: tf.keras.Model, x, y=None, *, batch_size: int = 256
) -> Optional[list]:
    """Each tentacle's own accuracy, for the head of Fig. 2-a.

    `x`, `y`: test images and labels, or `x` a batched dataset of (images, labels).

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
    if isinstance(x, tf.data.Dataset):
        # One pass, so the labels line up with the outputs of a shuffled or streamed split.
        batches = [(features(images, training=False), labels) for images, labels in x]
        outputs = [
            np.concatenate([found[i].numpy() for found, _ in batches])
            for i in range(len(concat.input))
        ]
        y = np.concatenate([labels.numpy() for _, labels in batches])
    else:
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
    loss, accuracy = model.evaluate(bundle.test, verbose=0)
    write_test_predictions(RunFolder(run_dir), *_predictions(model, bundle.test))
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
    per_tentacle = tentacle_accuracies(model, bundle.test)
    if per_tentacle is not None:
        result.update(tentacle_accuracies=per_tentacle, ensemble_accuracy=float(accuracy))
    return result


def _predictions(model, dataset):
    """(labels, predicted classes) of a batched (images, labels) dataset, in one pass."""
    labels, predicted = [], []
    for images, batch_labels in dataset:
        predicted.append(np.argmax(model(images, training=False).numpy(), axis=-1))
        labels.append(np.asarray(batch_labels).reshape(-1))
    return np.concatenate(labels).astype(int), np.concatenate(predicted).astype(int)


def write_test_predictions(run: RunFolder, labels, predictions) -> None:
    """test_predictions.csv: `label,prediction` per test image, in the test split's order."""
    lines = ["label,prediction"] + [f"{int(y)},{int(p)}" for y, p in zip(labels, predictions)]
    atomic.write_text(run.test_predictions, "\n".join(lines) + "\n")


def read_test_predictions(run_dir):
    """(labels, predictions) as int arrays from a run folder's test_predictions.csv."""
    path = RunFolder(run_dir).test_predictions
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No per-image test predictions at {path!r}. Fix: run the same train command "
            "again; a finished run is not retrained, only scored (which writes the file)."
        )
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=int, ndmin=2)
    return table[:, 0], table[:, 1]


def run_report(
    config: TrainConfig, bundle, rows, *, scores, input_shape, resumed_from_epoch, strategy, started
) -> dict:
    """report.json of a run: what was trained, its scores, its history and where it ran."""
    best = min(rows, key=lambda row: row["val_loss"]) if rows else {}
    fp32_accuracy = config.fp32_accuracy
    float_run = config.init_from or config.teacher
    if fp32_accuracy is None and float_run:
        fp32_accuracy = report_accuracy(float_run)
    return dict(
        model=config.model,
        dataset=config.dataset,
        variant=config.variant(),
        tentacles=config.tentacles,
        precision=config.precision,
        init=config.init,
        init_from=config.init_from,
        input_shape=list(input_shape),
        num_classes=bundle.num_classes,
        split_sizes=dict(bundle.sizes),
        class_names=list(bundle.class_names),
        data_notes=list(bundle.source.notes) if bundle.source else [],
        **scores,
        fp32_accuracy=fp32_accuracy,
        delta_vs_fp32=None if fp32_accuracy is None else scores["test_accuracy"] - fp32_accuracy,
        epochs=config.epochs,
        epochs_completed=len(rows),
        resumed_from_epoch=resumed_from_epoch,
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
        learning_rate=config.learning_rate,
        deterministic=config.deterministic,
        deterministic_ops=deterministic_ops(),
        versions=versions(),
        cpu=cpu_info(),
    )


def data_summary(bundle) -> str:
    """One line on the data a run trains on: classes, split sizes, cache, source notes."""
    sizes = ", ".join(f"{split} {count}" for split, count in bundle.sizes.items())
    line = f"Data: {bundle.preprocessing['dataset']}: {bundle.num_classes} classes; {sizes} images"
    if bundle.source is not None:
        line += f"; cached in memory: {', '.join(bundle.cached) or 'none'}"
        line += "".join(f"; {note}" for note in bundle.source.notes)
    return line + "."


def report_accuracy(run_dir) -> Optional[float]:
    """The test accuracy in a run folder's report.json; None before the run finished."""
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
                tentacles=""
                if not per_tentacle
                else " ".join(f"{100 * a:.1f}" for a in per_tentacle),
            )
        )
    return markdown_table(
        rows,
        ["model", "dataset", "variant", "accuracy", "delta", "kb", "epochs", "time", "tentacles"],
        [
            "model",
            "dataset",
            "variant",
            "test acc %",
            "Δ vs FP32 (pp)",
            "paper kB",
            "epochs",
            "wall s",
            "each tentacle alone %",
        ],
    )
