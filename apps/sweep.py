"""The paper's experiments in one command: FP32, TentacleNet(n) and BENN bagging/boosting(N).

    # the committed digits results (CPU, offline data)
    python apps/sweep.py --model=fernet --dataset=digits --input_size=16 --epochs=20 \
        --batch_size=64 --learning_rate=1e-2 --lr_patience=3 --tentacles=1,2,3,4,5,8 \
        --bagging=1-5 --boosting=1-5 --seeds=0,1,2 --workdir=runs/sweep_digits_fernet
    # item 7: both recipes (paper, and a best one distilled from each seed's FP32 point)
    python apps/sweep.py --model=fernet --dataset=digits --input_size=16 --epochs=20 \
        --batch_size=64 --learning_rate=1e-2 --lr_patience=3 --lr_grid=1e-3,3e-3,1e-2 \
        --tentacles=1,2,3,5,8 --bagging=1-5 --boosting= --seeds=0-4 \
        --best_recipe=block=react,teacher=fp32 --workdir=runs/sweep_digits_recipes
    # item 5 of issue 14: add the int8 CNN baseline to a finished sweep (same flags + widths)
    python apps/sweep.py ...the same flags... --int8_widths=0.25,0.5,1.0
    # the paper's CIFAR-10 sweep (one GPU; see docs/experiments.md)
    python apps/sweep.py --model=nin --dataset=cifar10 --tentacles=1-14 --bagging=1-12 \
        --boosting=1-8 --seeds=0,1,2 --workdir=runs/sweep_nin_cifar10

Run the same command again after a stop: finished points are never retrained and an
unfinished one resumes from its last epoch. `--render_only` redraws the CSV, plots and
table from what is done. A thin shell over `larq_tentacle.experiments`; see
docs/experiments.md.
"""

import shlex  # noqa: E402
import sys  # noqa: E402

from absl import app, flags  # noqa: E402

import larq_tentacle  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from larq_tentacle import experiments  # noqa: E402
from larq_tentacle.experiments.best_recipe import PILOT_BEST_RECIPE  # noqa: E402
from larq_tentacle.training import recipe_flags  # noqa: E402
from larq_tentacle.utils import app_logging  # noqa: E402

_DEFAULTS = experiments.SweepConfig(model="nin")

# Every point's seed comes from --seeds, so the recipe's own seed gets no flag.
recipe_flags.define_recipe_flags(_DEFAULTS, exclude=("seed",))
flags.DEFINE_string(
    "tentacles", "1-5", "TentacleNet tentacle counts: '1-8', '1,2,4' or '' to skip."
)
flags.DEFINE_string("bagging", "1-5", "BENN bagging ensemble sizes ('' to skip).")
flags.DEFINE_string("boosting", "1-5", "BENN boosting ensemble sizes ('' to skip).")
flags.DEFINE_string("seeds", "0,1,2", "Seeds; every point is trained once per seed.")
flags.DEFINE_string(
    "int8_widths", "",
    "Channel widths of the int8 CNN baseline, e.g. 0.25,0.5,1.0: the float model with its "
    "channels times each width, trained with the FP32 recipe, exported to int8 and scored "
    "('' to skip).",
)
flags.DEFINE_string("init", _DEFAULTS.init, "Tentacle init: hadamard (the paper's) or copy.")
flags.DEFINE_string(
    "sampling", _DEFAULTS.sampling, "Bagging samples: bootstrap or partition (the paper's §2.3)."
)
flags.DEFINE_string("vote", _DEFAULTS.vote, "Bagging vote: average (softmax) or majority.")
flags.DEFINE_float("fp32_accuracy", None, "Known FP32 test accuracy (0..1): skip the FP32 points.")
flags.DEFINE_string(
    "best_recipe", "",
    "A second recipe for TentacleNet and bagging, as key=value overrides of this one, e.g. "
    "block=react,rprelu=true,teacher=fp32 (teacher=fp32: distil from the seed's FP32 point); "
    f"the recipe pilot's choice, also the main job's: {PILOT_BEST_RECIPE}.",
)
flags.DEFINE_string("workdir", None, "Output folder (default: runs/sweep_<model>_<dataset>).")
flags.DEFINE_bool(
    "render_only", False, "Only redraw CSV, plots and table from the finished points."
)
flags.DEFINE_bool("progress", True, "Show a progress bar over the points.")
flags.DEFINE_integer("verbose", 0, "Keras verbosity of each training run.")

FLAGS = flags.FLAGS


def parse_counts(name: str, text: str) -> list:
    """'1-8' -> [1..8]; '1,2,4' -> [1, 2, 4]; '3-5,8' -> [3, 4, 5, 8]; '' -> []."""
    values = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, dash, high = part.partition("-")
        try:
            values += list(range(int(low), int(high) + 1)) if dash else [int(part)]
        except ValueError:
            raise ValueError(
                f"--{name}={text!r} is not a list of integers. "
                f"Fix: e.g. --{name}=1-8 or --{name}=1,2,4."
            ) from None
    return values


def parse_widths(text: str) -> list:
    """'0.25,0.5,1' -> [0.25, 0.5, 1.0]; '' -> []."""
    try:
        return [float(part) for part in filter(None, (p.strip() for p in text.split(",")))]
    except ValueError:
        raise ValueError(
            f"--int8_widths={text!r} is not a list of numbers. Fix: e.g. "
            "--int8_widths=0.25,0.5,1.0."
        ) from None


def config_from_flags() -> experiments.SweepConfig:
    return experiments.SweepConfig(
        **recipe_flags.recipe_values(FLAGS),
        tentacles=parse_counts("tentacles", FLAGS.tentacles),
        bagging=parse_counts("bagging", FLAGS.bagging),
        boosting=parse_counts("boosting", FLAGS.boosting),
        seeds=parse_counts("seeds", FLAGS.seeds),
        init=FLAGS.init,
        sampling=FLAGS.sampling,
        vote=FLAGS.vote,
        fp32_accuracy=FLAGS.fp32_accuracy,
        best_recipe=experiments.best_recipe_from_flag(FLAGS.best_recipe),
        int8_widths=parse_widths(FLAGS.int8_widths),
    )


def main(argv):
    if len(argv) > 1:
        print(
            f"sweep.py: error: unexpected arguments {argv[1:]}; every option is a --flag.",
            file=sys.stderr,
        )
        return 2
    app_logging.quiet_info_logs()
    # The command that produces the points, so a --render_only redraw still names it.
    argv = [a for a in sys.argv[1:] if not a.startswith(("--render_only", "--norender_only"))]
    command = "python apps/sweep.py " + " ".join(shlex.quote(a) for a in argv)
    try:
        config = config_from_flags()
        workdir = FLAGS.workdir or experiments.default_workdir(config)
        if FLAGS.render_only:
            result = experiments.render(workdir, command=command)
        else:
            result = experiments.run_sweep(
                config, workdir, progress=FLAGS.progress, verbose=FLAGS.verbose, command=command
            )
    except (ValueError, TypeError, FileNotFoundError) as error:
        message = " ".join(str(error).split())
        print(f"sweep.py: error: {message}", file=sys.stderr)
        return 2
    with open(result["paths"]["table2.md"]) as file:
        table = file.read().split("\n## ")[0]
    print(table)
    print("Written: " + ", ".join(result["paths"].values()))
    return 0


if __name__ == "__main__":
    app.run(main)
