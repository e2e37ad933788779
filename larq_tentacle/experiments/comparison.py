"""Trained runs compared on the same test images: intervals, paired tests, a fair choice.

The main job (`apps/demo.py`) compares an FP32 model, a BNN and two TentacleNets. Its
numbers come from the run folders `training.train` wrote (report.json and the per-image
test_predictions.csv of each run's kept model); nothing here knows which models they are.

The choice between runs (`choose_by_validation`) reads only the validation split: a model
chosen by its test accuracy would carry that choice's luck into the very number it reports.
"""

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from larq_tentacle.experiments.confidence import mcnemar_exact, wilson_interval
from larq_tentacle.training.report import read_test_predictions

__all__ = [
    "choose_by_validation",
    "correct_per_image",
    "mcnemar_sentence",
    "paired_tests",
    "wilson_percent",
]


def correct_per_image(run_dirs: Mapping[str, str]) -> Dict[str, np.ndarray]:
    """Per run name: one bool per test image, True where the run's kept model was right.

    Raises ValueError when the runs were not scored on the same test images (their labels
    differ), since every paired test below needs the same images in the same order.
    """
    correct, reference = {}, None
    for name, run_dir in run_dirs.items():
        labels, predictions = read_test_predictions(run_dir)
        if reference is None:
            reference = (name, labels)
        elif labels.shape != reference[1].shape or np.any(labels != reference[1]):
            raise ValueError(
                f"Runs {reference[0]!r} and {name!r} ({run_dir!r}) were scored on different "
                "test images. Fix: train both on the same dataset, input size and split."
            )
        correct[name] = predictions == labels
    return correct


def wilson_percent(correct, *, confidence: float = 0.95) -> Tuple[float, float]:
    """The Wilson interval, in %, of the accuracy a bool-per-image array records."""
    hits = np.asarray(correct, dtype=bool).ravel()
    low, high = wilson_interval(int(hits.sum()), int(hits.size), confidence=confidence)
    return 100.0 * low, 100.0 * high


def paired_tests(
    correct: Mapping[str, np.ndarray], pairs: Sequence[Tuple[str, str]]
) -> List[dict]:
    """McNemar's exact test for each (first, second) pair of run names, image by image."""
    tests = []
    for first, second in pairs:
        missing = [name for name in (first, second) if name not in correct]
        if missing:
            raise ValueError(
                f"No test predictions for {missing} (have {sorted(correct)}). Fix: pair only "
                "runs that were trained and scored."
            )
        result = mcnemar_exact(correct[first], correct[second])
        tests.append(dict(result, first=first, second=second))
    return tests


def mcnemar_sentence(test: dict, labels: Mapping[str, str]) -> str:
    """One line of text for one `paired_tests` entry, models named by `labels`."""
    first, second = labels[test["first"]], labels[test["second"]]
    verdict = "below 0.05" if test["p_value"] < 0.05 else "not below 0.05"
    return (
        f"McNemar's exact test, {first} vs {second} on the same {test['images']} test "
        f"images: {test['first_only']} right only by {first}, {test['second_only']} only by "
        f"{second}, two-sided p = {test['p_value']:.3g} ({verdict})."
    )


def choose_by_validation(reports: Mapping[str, dict]) -> dict:
    """The run whose kept model scored best on the validation split.

    `reports` maps run names to their report.json dicts (`best_val_accuracy`,
    `best_val_loss`: the validation scores of the model each run kept). Ties go to the
    lower validation loss, then to the run listed first. Test accuracy plays no part.

    # Returns
        dict(run=<name>, val_accuracy={name: accuracy}, rule=<the rule, in words>).
    """
    if not reports:
        raise ValueError("No runs to choose from. Fix: pass at least one run's report.")
    scores = {}
    for order, (name, report) in enumerate(reports.items()):
        accuracy, loss = report.get("best_val_accuracy"), report.get("best_val_loss")
        if accuracy is None or loss is None:
            raise ValueError(
                f"Run {name!r} has no validation scores (best_val_accuracy, best_val_loss). "
                "Fix: train it with a validation split (every training.train run has one)."
            )
        scores[name] = (-float(accuracy), float(loss), order)
    chosen = min(scores, key=scores.get)
    return dict(
        run=chosen,
        val_accuracy={name: -score[0] for name, score in scores.items()},
        rule="highest validation accuracy of the kept model (ties: lower validation loss); "
        "the test split plays no part in the choice",
    )
