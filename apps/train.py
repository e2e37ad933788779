"""Train an FP32 baseline, its BNN or a TentacleNet with the paper's recipe.

    python apps/train.py --model=nin --dataset=cifar10 --tentacles=5 --workdir=runs/nin5
    python apps/train.py --model=fernet --dataset=fer2013 --data_dir=~/data --tentacles=3
    python apps/train.py --model=nin --dataset=digits --tentacles=3 --epochs=30   # offline

Run the same command again after a crash: it resumes from the last completed epoch.
A thin shell over `larq_tentacle.training.train`; see docs/training.md.
"""

import sys  # noqa: E402

from absl import app, flags  # noqa: E402

import larq_tentacle  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from larq_tentacle.training import recipe_flags  # noqa: E402
from larq_tentacle.training.config import TrainConfig, default_workdir  # noqa: E402
from larq_tentacle.training.loop import train  # noqa: E402
from larq_tentacle.utils import app_logging  # noqa: E402

_DEFAULTS = TrainConfig(model="nin")

# One flag per TrainConfig field (help and defaults from the dataclass), then the app's own.
_SHARED = recipe_flags.define_recipe_flags(_DEFAULTS)
_OWN = tuple(name for name in _DEFAULTS.to_dict() if name not in _SHARED)
recipe_flags.define_config_flags(_DEFAULTS, _OWN)
flags.DEFINE_string(
    "workdir", None, "Output folder (default: runs/<model>_<dataset>_<fp32|bnn|tn<n>>)."
)
flags.DEFINE_integer(
    "verbose", 1, "Keras verbosity: 1 progress bar, 2 one line per epoch, 0 silent."
)

FLAGS = flags.FLAGS


def config_from_flags() -> TrainConfig:
    return TrainConfig(
        **recipe_flags.recipe_values(FLAGS), **recipe_flags.config_values(FLAGS, _OWN)
    )


def main(argv):
    app_logging.quiet_info_logs()
    if len(argv) > 1:
        print(
            f"train.py: error: unexpected arguments {argv[1:]}; every option is a --flag.",
            file=sys.stderr,
        )
        return 2
    try:
        config = config_from_flags()
        workdir = FLAGS.workdir or default_workdir(config)
        report = train(config, workdir, verbose=FLAGS.verbose)
    except (ValueError, TypeError, FileNotFoundError) as error:
        message = " ".join(str(error).split())
        print(f"train.py: error: {message}", file=sys.stderr)
        return 2
    print(f"Run written to {workdir} (test accuracy {100 * report['test_accuracy']:.2f}%).")
    if report.get("int8_test_accuracy") is not None:
        print(
            f"int8 model fine-tuned {report['int8_epochs']} epoch(s): test accuracy "
            f"{100 * report['int8_test_accuracy']:.2f}% (calibrated only: "
            f"{100 * report['int8_calibrated_test_accuracy']:.2f}%), "
            f"{workdir}/int8_model.h5; export it with apps/export.py --quantize=int8."
        )
    return 0


if __name__ == "__main__":
    app.run(main)
