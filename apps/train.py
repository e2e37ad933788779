"""Train an FP32 baseline, its BNN or a TentacleNet with the paper's recipe.

    python apps/train.py --model=nin --dataset=cifar10 --tentacles=5 --workdir=runs/nin5
    python apps/train.py --model=fernet --dataset=fer2013 --data_dir=~/data --tentacles=3
    python apps/train.py --model=nin --dataset=digits --tentacles=3 --epochs=30   # offline

Run the same command again after a crash: it resumes from the last completed epoch.
A thin shell over `larq_tentacle.training.train`; see docs/training.md.
"""

import larq_tentacle  # noqa: F401  (selects Keras 2 before TensorFlow loads)

import sys  # noqa: E402

from absl import app, flags  # noqa: E402

from larq_tentacle.utils import app_logging  # noqa: E402
from larq_tentacle.training import recipe_flags  # noqa: E402
from larq_tentacle.training import loop as training  # noqa: E402

_DEFAULTS = training.TrainConfig(model="nin")

recipe_flags.define_recipe_flags(_DEFAULTS)
flags.DEFINE_integer("tentacles", _DEFAULTS.tentacles, "Binary tentacles (1 = the plain BNN).")
flags.DEFINE_string("precision", _DEFAULTS.precision, "binary or float (the FP32 baseline).")
flags.DEFINE_string("init", None, "hadamard or copy (default: copy with --init_from, else hadamard).")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights, shuffling, augmentation, validation hold-out.")
flags.DEFINE_string("strategy", _DEFAULTS.strategy, "default, mirrored or multi_worker (reads TF_CONFIG).")
flags.DEFINE_string("init_from", None, "Workdir of a trained --precision=float run to start from.")
flags.DEFINE_float("fp32_accuracy", None, "Test accuracy (0..1) of the FP32 baseline, for the Δ column.")
flags.DEFINE_string("workdir", None, "Output folder (default: runs/<model>_<dataset>_<fp32|bnn|tn<n>>).")
flags.DEFINE_integer("verbose", 1, "Keras verbosity: 1 progress bar, 2 one line per epoch, 0 silent.")

FLAGS = flags.FLAGS


def config_from_flags() -> training.TrainConfig:
    return training.TrainConfig(
        **recipe_flags.recipe_values(FLAGS),
        tentacles=FLAGS.tentacles,
        precision=FLAGS.precision,
        init=FLAGS.init,
        seed=FLAGS.seed,
        strategy=FLAGS.strategy,
        init_from=FLAGS.init_from,
        fp32_accuracy=FLAGS.fp32_accuracy,
    )


def main(argv):
    app_logging.quiet_info_logs()
    if len(argv) > 1:
        print(f"train.py: error: unexpected arguments {argv[1:]}; every option is a --flag.", file=sys.stderr)
        return 2
    try:
        config = config_from_flags()
        workdir = FLAGS.workdir or training.default_workdir(config)
        report = training.train(config, workdir, verbose=FLAGS.verbose)
    except (ValueError, TypeError, FileNotFoundError) as error:
        message = " ".join(str(error).split())
        print(f"train.py: error: {message}", file=sys.stderr)
        return 2
    print(f"Run written to {workdir} (test accuracy {100 * report['test_accuracy']:.2f}%).")
    return 0


if __name__ == "__main__":
    app.run(main)
