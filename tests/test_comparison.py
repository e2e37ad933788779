"""experiments.comparison: the main job's statistics on run folders (fast, no training)."""

import os

import numpy as np
import pytest

from larq_tentacle.experiments import comparison
from larq_tentacle.training.report import write_test_predictions
from larq_tentacle.utils.run_folder import RunFolder


def _run(root, name, labels, predictions) -> str:
    path = os.path.join(str(root), name)
    os.makedirs(path)
    write_test_predictions(RunFolder(path), np.asarray(labels), np.asarray(predictions))
    return path


def test_correct_per_image_and_paired_tests(tmp_path):
    labels = [0, 1, 2, 3, 4, 5]
    runs = {
        "a": _run(tmp_path, "a", labels, [0, 1, 2, 3, 0, 0]),  # 4 right
        "b": _run(tmp_path, "b", labels, [0, 1, 0, 0, 4, 5]),  # 4 right, other images
    }
    correct = comparison.correct_per_image(runs)
    assert correct["a"].tolist() == [True, True, True, True, False, False]
    assert correct["b"].tolist() == [True, True, False, False, True, True]
    (test,) = comparison.paired_tests(correct, [("a", "b")])
    assert (test["first"], test["second"], test["images"]) == ("a", "b", 6)
    assert (test["first_only"], test["second_only"]) == (2, 2) and test["p_value"] == 1.0
    sentence = comparison.mcnemar_sentence(test, {"a": "Model A", "b": "Model B"})
    assert "Model A vs Model B on the same 6 test images" in sentence
    assert "2 right only by Model A" in sentence and "p = 1 (not below 0.05)" in sentence
    low, high = comparison.wilson_percent(correct["a"])
    assert low < 100 * 4 / 6 < high


def test_runs_on_other_test_images_are_refused(tmp_path):
    runs = {
        "a": _run(tmp_path, "a", [0, 1, 2], [0, 1, 2]),
        "b": _run(tmp_path, "b", [0, 2, 1], [0, 1, 2]),
    }
    with pytest.raises(ValueError, match="different test images.*Fix"):
        comparison.correct_per_image(runs)
    with pytest.raises(ValueError, match=r"No test predictions for \['c'\]"):
        comparison.paired_tests({"a": np.ones(3, bool)}, [("a", "c")])


def test_choose_by_validation_ignores_test_accuracy():
    reports = {
        "paper": dict(best_val_accuracy=0.95, best_val_loss=0.20, test_accuracy=0.99),
        "best": dict(best_val_accuracy=0.97, best_val_loss=0.30, test_accuracy=0.90),
    }
    choice = comparison.choose_by_validation(reports)
    assert choice["run"] == "best"
    assert choice["val_accuracy"] == {"paper": 0.95, "best": 0.97}
    assert "test split plays no part" in choice["rule"]
    # A tie in accuracy goes to the lower validation loss, then to the first run.
    reports["best"]["best_val_accuracy"] = 0.95
    assert comparison.choose_by_validation(reports)["run"] == "paper"
    reports["best"]["best_val_loss"] = 0.20
    assert comparison.choose_by_validation(reports)["run"] == "paper"
    with pytest.raises(ValueError, match="'x' has no validation scores.*Fix"):
        comparison.choose_by_validation({"x": dict(test_accuracy=1.0)})
    with pytest.raises(ValueError, match="No runs"):
        comparison.choose_by_validation({})
