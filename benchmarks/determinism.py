"""The cost of deterministic ops: epoch time with and without `--deterministic`.

Each run is `apps/train.py` in a fresh process (TensorFlow cannot turn deterministic ops
off again inside one), on the offline digits, with the same seed. Modes are interleaved:
every repetition runs each (variant, mode) once, so a change in machine load hits both
alike. Reported per (variant, mode): the median, min and max over the repetitions of
the mean epoch time of epochs 2.. (epoch 1 also traces the graph) and of the process's
wall time, the ratio of medians (deterministic / not), and whether the repetitions'
loss histories were identical.

    python benchmarks/determinism.py --repeats=3 --out=docs/results/determinism

Standalone: needs only the repository and its pinned packages.
"""

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from larq_tentacle.utils import atomic  # noqa: E402
from larq_tentacle.utils.machine import cpu_info  # noqa: E402
from larq_tentacle.utils.tables import markdown_table  # noqa: E402

VARIANTS = {"fp32": ["--precision=float"], "bnn": ["--tentacles=1"], "tn3": ["--tentacles=3"]}
MODES = {"deterministic": "--deterministic", "not deterministic": "--nodeterministic"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="fernet")
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--variants", default="fp32,tn3", help=f"from {sorted(VARIANTS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    return parser.parse_args(argv)


def run_once(args, variant: str, mode: str, workdir: str) -> dict:
    """One training process; its epoch times and loss history from history.csv."""
    command = [
        sys.executable, os.path.join(ROOT, "apps", "train.py"), f"--model={args.model}",
        "--dataset=digits", f"--input_size={args.input_size}", f"--epochs={args.epochs}",
        f"--batch_size={args.batch_size}", "--seed=0", "--verbose=0", f"--workdir={workdir}",
        MODES[mode], *VARIANTS[variant],
    ]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    wall = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    with open(os.path.join(workdir, "history.csv")) as file:
        rows = list(csv.DictReader(file))
    later = [float(row["epoch_time_s"]) for row in rows[1:]] or [float(rows[0]["epoch_time_s"])]
    return dict(epoch_s=statistics.mean(later), wall_s=wall, loss=[row["loss"] for row in rows])


def summarize(runs: dict) -> list:
    rows = []
    for (variant, mode), results in runs.items():
        epochs = [r["epoch_s"] for r in results]
        plain = [r["epoch_s"] for r in runs[(variant, "not deterministic")]]
        rows.append(dict(
            variant=variant, mode=mode, repeats=len(results),
            epoch_s=f"{statistics.median(epochs):.2f} ({min(epochs):.2f} – {max(epochs):.2f})",
            wall_s=f"{statistics.median(r['wall_s'] for r in results):.1f}",
            ratio=f"{statistics.median(epochs) / statistics.median(plain):.2f}",
            same_loss="yes" if all(r["loss"] == results[0]["loss"] for r in results) else "no",
        ))
    return rows


def main(argv=None):
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    runs = {(v, m): [] for v in variants for m in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for variant in variants:
                for mode in MODES:
                    workdir = os.path.join(scratch, f"{variant}_{mode.replace(' ', '_')}_{repeat}")
                    result = run_once(args, variant, mode, workdir)
                    runs[(variant, mode)].append(result)
                    print(f"repeat {repeat} {variant} {mode}: epoch {result['epoch_s']:.2f} s, "
                          f"process {result['wall_s']:.1f} s", flush=True)
    rows = summarize(runs)
    table = markdown_table(
        rows, ["variant", "mode", "repeats", "epoch_s", "ratio", "wall_s", "same_loss"],
        ["variant", "ops", "repeats", "epoch s, epochs 2.. (median, min – max)",
         "ratio to not deterministic", "process wall s (median)",
         "identical loss history over repeats"],
    )
    command = "python benchmarks/determinism.py " + " ".join(sys.argv[1:] if argv is None else argv)
    markdown = (
        f"# Cost of deterministic ops ({args.model} {args.input_size}x{args.input_size} on "
        f"digits, batch {args.batch_size}, {args.epochs} epochs)\n\n{table}\n\n"
        f"Machine: {platform.platform()}, CPU {json.dumps(cpu_info())}\n\nCommand: `{command}`\n"
    )
    print(markdown)
    if args.out:
        atomic.write_text(args.out + ".md", markdown)
        atomic.write_json(args.out + ".json", dict(
            rows=rows, runs={f"{v}|{m}": r for (v, m), r in runs.items()}, cpu=cpu_info(),
            command=command,
        ))


if __name__ == "__main__":
    main()
