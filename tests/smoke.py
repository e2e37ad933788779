"""Smoke test of an installed larq_tentacle on the running Python (not collected by pytest).

Prints the versions, builds every registered model (2 tentacles) and runs a forward pass,
trains FerNet with 2 tentacles for one epoch on digits (offline) and exports it to a
verified LCE .tflite. Uses only the public `import larq_tentacle as lt` API.
Exit status 0 when everything passed, 1 (with the failing step named) otherwise.

    make smoke-versions                      # fresh venvs for Python 3.10 and 3.12
    cd /tmp && python /path/to/tests/smoke.py --installed    # test the installed package
"""

import argparse
import os
import sys
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def import_package(installed):
    import larq_tentacle as lt  # first: selects Keras 2 before TensorFlow loads

    where = os.path.dirname(os.path.abspath(lt.__file__))
    print(f"python {sys.version.split()[0]} ({sys.executable})")
    print(f"larq_tentacle {lt.__version__} from {where}")
    for name, version in lt.versions().items():
        print(f"  {name:22s} {version}")
    if installed:
        check(
            where != os.path.join(SOURCE_TREE, "larq_tentacle"),
            f"--installed: larq_tentacle was imported from the source tree ({where}), not "
            "from site-packages. Fix: run from outside the repository (cd /tmp) with a "
            "non-editable install.",
        )
    return lt


def build_every_model(lt):
    import numpy as np

    models = lt.list_models()
    check(models, "lt.list_models() is empty")
    for name in models:
        model = lt.build(name, tentacles=2)
        x = np.random.default_rng(0).standard_normal((2, *model.input_shape[1:])).astype("float32")
        y = np.asarray(model(x, training=False))
        check(y.shape == (2, model.output_shape[-1]), f"{name}: output shape {y.shape}")
        check(np.isfinite(y).all(), f"{name}: non-finite outputs")
        params = model.count_params()
        print(f"  {name}: input {model.input_shape[1:]} -> output {y.shape}, {params} params")


def train_and_export(lt, workdir):
    import numpy as np

    # lt.train: the library's own training path (seeding, callbacks, h5 checkpoints, report).
    config = lt.TrainConfig(
        model="fernet",
        dataset="digits",
        tentacles=2,
        input_size=16,
        epochs=1,
        batch_size=64,
        learning_rate=1e-2,
    )
    run = lt.train(config, os.path.join(workdir, "run"), verbose=0)
    print(
        f"  fernet n=2, 1 epoch on digits: val_loss {run['best_val_loss']:.3f}, "
        f"test accuracy {100 * run['test_accuracy']:.1f} % (one epoch: chance level is normal)"
    )
    check(run["epochs_completed"] == 1, f"{run['epochs_completed']} epochs completed, expected 1")
    check(np.isfinite(run["best_val_loss"]), f"validation loss is {run['best_val_loss']}")

    # The saved best model, exported with verification on the same preprocessed digits.
    bundle = lt.load_dataset("digits", input_shape=tuple(run["input_shape"]), batch_size=64)
    model = lt.load_model(os.path.join(workdir, "run", "best_model.h5"))
    path = os.path.join(workdir, "fernet2.tflite")
    result = lt.export(
        model,
        path,
        sample=bundle.arrays.x_test[:64],
        preprocessing=bundle.preprocessing,
        class_names=bundle.class_names,
    )
    print("  " + result.report.summary().replace("\n", "\n  "))
    check(result.report.passed, "export verification did not pass")
    check(
        os.path.getsize(path) > 0 and os.path.isfile(result.sidecar_path),
        "export wrote no .tflite + sidecar",
    )
    report = lt.verify(model, path, bundle.arrays.x_test[:16])
    check(report.passed, f"lt.verify on the written file failed:\n{report.summary()}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--installed",
        action="store_true",
        help="fail if larq_tentacle is imported from this source tree",
    )
    args = parser.parse_args()

    started = time.time()
    state = {}
    with tempfile.TemporaryDirectory(prefix="lt-smoke-") as workdir:
        steps = [
            ("import and versions", lambda: state.update(lt=import_package(args.installed))),
            ("build every model at tentacles=2", lambda: build_every_model(state["lt"])),
            (
                "train fernet n=2 one epoch on digits, export",
                lambda: train_and_export(state["lt"], workdir),
            ),
        ]
        for name, step in steps:
            print(f"== {name}", flush=True)
            step_started = time.time()
            try:
                step()
            except Exception as error:  # every failure ends the run with the step named
                traceback.print_exc()
                print(
                    f"SMOKE FAILED on Python {sys.version.split()[0]} at step {name!r}: "
                    f"{type(error).__name__}: {error}",
                    file=sys.stderr,
                )
                return 1
            print(f"   ok ({time.time() - step_started:.1f} s)", flush=True)
    print(f"SMOKE PASSED on Python {sys.version.split()[0]} in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
