"""`.tflite` size vs the paper's kB, for each model and number of tentacles (issue 4).

    python benchmarks/export_size.py --models=fernet,nin,resnet9 --tentacles=1,3,5,8,14

For every (model, n): export the binary TentacleNet with `lt.export` (strict,
verified on random inputs), and report the `.tflite` bytes, the paper-rule kB of
the same Keras model (`lt.paper_size_kb`), the paper's published kB where the
paper has one, their ratio, and the op census. The FP32 baseline of each model is
exported once (`precision="float"`, stock LCE conversion) for the float column.
Models use their native input shapes and `paper_options` (the sizes the paper
counts). Weights are untrained, with random BatchNorm statistics as after training:
the parity check needs them, and so do the sizes, because the converter stores
equal constant buffers once (identity BatchNorms would undercount NiN by 6 %).
Exports use `lt.export`'s default compact tensor names; the converter's own
names are reported as a second ratio.

Conversions are slow (10 s to minutes each; branched conversion time grows with
n), so results accumulate in `--results` (JSON, one row per (model, n)) and a
rerun only converts the rows that are missing. The markdown table in `--output`
always covers every row in the results file and says which rows were run.
Goal from the issue: `.tflite` / paper kB <= 1.10 for every binary row.
"""

import json
import os
import sys
import tempfile
import time

from absl import app, flags

import larq_tentacle as lt  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from larq_tentacle.deploy import census, tflite_file
from larq_tentacle.utils import app_logging, atomic
from larq_tentacle.utils.tables import markdown_table

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["fernet", "nin", "resnet9"], "Registered models to export.")
flags.DEFINE_list("tentacles", ["1", "3", "5", "8", "14"], "Numbers of tentacles.")
flags.DEFINE_string("output", "docs/export_size.md", "Markdown table to write.")
flags.DEFINE_string(
    "results", "docs/export_size.json", "Rows so far (reused; only missing rows are converted)."
)
flags.DEFINE_bool("float_baseline", True, "Also export each model's FP32 baseline.")
flags.DEFINE_bool("force", False, "Convert rows again even if the results file has them.")
flags.DEFINE_integer("random_samples", 2, "Random inputs for each parity check.", lower_bound=1)
flags.DEFINE_float(
    "time_budget_s", 15 * 60, "Stop starting new conversions after this many seconds."
)
flags.DEFINE_string("note", "", "Free text appended to the table's run note (e.g. machine load).")

GOAL_RATIO = 1.10
# How to read the table, one markdown line per line.
EXPLANATION = """\
Written by `benchmarks/export_size.py` (not a test). Each row is a verified, strict LCE export
(`lt.export`, target arm, parity on random inputs) of an untrained model at its native input
shape with the paper's options. kB = KiB. *paper-rule kB* is `lt.paper_size_kb(model, exact=True)`:
1 bit per binary weight, 32 bits per float weight, no BatchNorm. *paper's kB* is the number
printed in the paper (Tables 1/2) where it has one. *ratio* = .tflite kB / paper-rule kB.
Where the bytes go: *bitpacked weights* are the LceBconv2d filters (the paper's 1 bit per
binary weight, padded to 32-bit words); *float constants* are the float stem and head plus the
per-channel multipliers/biases of every folded BatchNorm (which the paper does not count);
*int32 constants* are the per-channel thresholds of bconvs that write bitpacked output;
*flatbuffer structure* is the rest (op and tensor tables, tensor names, signature, metadata).
*ratio* is for the file `lt.export` writes, with compact tensor names (each op's output named
after its Keras layer, constants unnamed); *ratio with converter names*: the converter's own
file before that (`tensor_names="converter"`); *ratio without any names*: tensor names and
signature removed too (`tflite_file.without_names`, a floor: the strict checks and device
profiles could no longer tell which tentacle an op is in);
*ratio of constants alone*: every constant buffer (weights, thresholds, BatchNorm constants)
over the paper-rule kB, i.e. what no flatbuffer layout can go below.
x86 conversion times are noisy (shared 2-core machine) and say nothing about device speed.
"""



def export_row(name: str, tentacles, workdir: str, random_samples: int) -> dict:
    """Export one model variant; `tentacles=None` means the FP32 baseline."""
    from larq_tentacle.deploy import verification as deploy

    spec = lt.get_spec(name)
    if tentacles is None:
        model = lt.build(name, precision="float", **spec.paper_options)
        label = f"{name}_fp32"
    else:
        model = lt.build(name, tentacles=tentacles, **spec.paper_options)
        label = f"{name}_t{tentacles}"
    _realistic_batchnorm(model, seed=0 if tentacles is None else tentacles)
    start = time.perf_counter()
    path = os.path.join(workdir, f"{label}.tflite")
    parity = "checked"
    try:
        result = lt.export(model, path, random_samples=random_samples, strict=tentacles is not None)
    except deploy.VerificationError as error:
        if "binary activations within" not in str(error):
            raise
        # Untrained weights leave binary dot products at exactly 0 (ties), which the
        # parity check refuses to call a pass; sizes and ops do not depend on it, and
        # export(verify=False) still runs the strict op checks.
        parity = "ties (untrained)"
        result = lt.export(model, path, verify=False, strict=tentacles is not None)
    seconds = time.perf_counter() - start
    paper_rule_kb = lt.paper_size_kb(model, exact=True)
    published = None
    if tentacles is None:
        published = spec.paper_size_kb["float"]
    elif tentacles == 1:
        published = spec.paper_size_kb["binary"]
    elif tentacles == spec.paper_size_kb["tentaclenet"][0]:
        published = spec.paper_size_kb["tentaclenet"][1]
    tflite_bytes = result.sidecar["tflite_bytes"]
    # The floor without tensor names / signature (tflite_file.without_names): what the
    # flatbuffer's tables cost beyond the constants, names excluded.
    with open(result.path, "rb") as file:
        no_names_bytes = len(tflite_file.without_names(file.read()))
    report_census = (
        result.report.census if result.report is not None else census.op_census(result.path)
    )
    counts = report_census["ops"]
    converter_bytes = result.sidecar["tensor_names"]["converter_tflite_bytes"]
    tensor_bytes = report_census["tensor_bytes"]
    binary_bytes = report_census["binary_weight_bytes"]
    float_bytes = report_census["float_weight_bytes"]
    constants = sum(tensor_bytes.values())
    return {
        "model": name,
        "tentacles": "fp32" if tentacles is None else tentacles,
        "options": ", ".join(f"{k}={v}" for k, v in spec.paper_options.items()),
        "tflite_bytes": tflite_bytes,
        "tflite_kb": tflite_bytes / 1024,
        "paper_rule_kb": paper_rule_kb,
        "published_kb": published,
        "ratio": tflite_bytes / 1024 / paper_rule_kb,
        "converter_names_ratio": converter_bytes / 1024 / paper_rule_kb,
        "no_names_ratio": no_names_bytes / 1024 / paper_rule_kb,
        "constants_ratio": constants / 1024 / paper_rule_kb,
        "float_weight_kb": float_bytes / 1024,
        "binary_weight_kb": binary_bytes / 1024,
        # Per-channel int32 thresholds of bconvs that write bitpacked output, shapes, axes.
        "other_constant_kb": (constants - binary_bytes - float_bytes) / 1024,
        # Flatbuffer tables: ops, tensor names and shapes, signature, metadata.
        "structure_kb": (tflite_bytes - constants) / 1024,
        "tensor_bytes": tensor_bytes,
        "max_abs_diff": result.report.max_abs_diff if result.report is not None else None,
        "parity": parity,
        "ops": counts,
        "census": census.census_markdown(report_census).split("\n")[0].removeprefix("ops: "),
        "convert_and_verify_s": seconds,
    }


def _realistic_batchnorm(model, seed: int) -> None:
    """Trained-looking BatchNorm statistics instead of the initial identity.

    With the initial statistics a binary conv's integer dot products hit 0 exactly and
    sign(0) decides the output, so parity would test tie-breaking, not the conversion.
    Sizes depend on them too: the converter stores equal constant buffers once.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            values = []
            for weight in layer.weights:
                short = weight.name.split("/")[-1].split(":")[0]
                shape = weight.shape
                values.append(
                    {
                        "gamma": lambda: rng.uniform(0.5, 1.5, shape),
                        "beta": lambda: rng.normal(0, 0.3, shape),
                        "moving_mean": lambda: rng.normal(0, 0.3, shape),
                        "moving_variance": lambda: rng.uniform(0.5, 2.0, shape),
                    }[short]()
                )
            layer.set_weights(values)


def _key(row) -> str:
    return f"{row['model']}/{row['tentacles']}"


def _load(path) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return {_key(row): row for row in json.load(file)["rows"]}


def render(rows: list, run_note: str) -> str:
    order = {name: i for i, name in enumerate(lt.list_models())}
    rows = sorted(
        rows,
        key=lambda r: (
            order.get(r["model"], 99),
            -1 if r["tentacles"] == "fp32" else r["tentacles"],
        ),
    )
    fp32 = {r["model"]: r["tflite_kb"] for r in rows if r["tentacles"] == "fp32"}
    table_rows = []
    for row in rows:
        binary = row["tentacles"] != "fp32"
        table_rows.append(
            dict(
                row,
                published=row["published_kb"] if row["published_kb"] is not None else "",
                goal="" if not binary else ("yes" if row["ratio"] <= GOAL_RATIO else "**no**"),
                no_names=f"{row['no_names_ratio']:.3f}" if "no_names_ratio" in row else "",
                converter_names=(
                    f"{row['converter_names_ratio']:.3f}" if "converter_names_ratio" in row else ""
                ),
                ratio_text=f"{row['ratio']:.3f}",
                constants_only=f"{row['constants_ratio']:.2f}" if "constants_ratio" in row else "",
                vs_fp32=(
                    f"{row['tflite_kb'] / fp32[row['model']]:.3f}"
                    if binary and row["model"] in fp32
                    else ""
                ),
                ops_short=_short_ops(row["ops"]),
            )
        )
    table = markdown_table(
        table_rows,
        [
            "model", "tentacles", "tflite_kb", "paper_rule_kb", "published", "ratio_text", "goal",
            "converter_names", "no_names", "constants_only", "vs_fp32",
            "binary_weight_kb", "float_weight_kb", "other_constant_kb", "structure_kb", "ops_short",
            "convert_and_verify_s",
        ],
        [
            "model", "n", ".tflite kB", "paper-rule kB", "paper's kB", "ratio", "≤ 1.10",
            "ratio with converter names", "ratio without any names", "ratio of constants alone",
            "/ FP32 .tflite",
            "bitpacked weights kB", "float constants kB", "int32 constants kB",
            "flatbuffer structure kB", "census", "convert+verify s",
        ],
    )
    worst = [r for r in rows if r["tentacles"] != "fp32" and r["ratio"] > GOAL_RATIO]
    binary_rows = sum(r["tentacles"] != "fp32" for r in rows)
    summary = (
        f"All {binary_rows} binary rows meet the goal .tflite / paper kB ≤ {GOAL_RATIO:.2f}."
        if not worst
        else f"{len(worst)} binary row(s) miss the goal .tflite / paper kB ≤ {GOAL_RATIO:.2f}: "
        + ", ".join(f"{r['model']} n={r['tentacles']} ({r['ratio']:.3f})" for r in worst)
        + ". See below for where the bytes go."
    )
    floor_misses = [r for r in worst if r.get("no_names_ratio", 0) > GOAL_RATIO]
    if floor_misses:
        summary += (
            f" Even with no names at all, {', '.join(_key(r) for r in floor_misses)} stay above "
            f"{GOAL_RATIO:.2f}: their constants and the op and tensor tables LCE needs to run "
            "the file already cost more."
        )
    unchecked = [_key(r) for r in rows if r.get("parity", "checked") != "checked"]
    if unchecked:
        summary += (
            f" Parity not checked for {', '.join(unchecked)}: with untrained weights too many "
            "binary dot products were exactly 0 (ties); "
            "those rows passed the strict op checks only."
        )
    return "\n".join(
        [
            "# `.tflite` size vs the paper's model size",
            "",
            *EXPLANATION.splitlines(),
            "",
            summary,
            "",
            table,
            "",
            f"Run: {run_note}",
            "",
        ]
    )


def _short_ops(ops: dict) -> str:
    keep = ("LceBconv2d", "LceQuantize", "LceBMaxPool2d")
    keep += ("CONV_2D", "FULLY_CONNECTED", "MUL", "ADD")
    return ", ".join(f"{name.replace('Lce', '')} {ops[name]}" for name in keep if ops.get(name))


def main(argv):
    del argv
    app_logging.quiet_info_logs()
    tentacles = [int(t) for t in FLAGS.tentacles]
    for name in FLAGS.models:
        lt.get_spec(name)
    rows = _load(FLAGS.results)
    plan = []
    for name in FLAGS.models:
        if FLAGS.float_baseline:
            plan.append((name, None))
        plan.extend((name, n) for n in tentacles)
    start = time.perf_counter()
    skipped = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, n in plan:
            key = f"{name}/{'fp32' if n is None else n}"
            if key in rows and not FLAGS.force:
                continue
            if time.perf_counter() - start > FLAGS.time_budget_s:
                skipped.append(key)
                continue
            print(f"exporting {key} ...", flush=True)
            rows[key] = export_row(name, n, workdir, FLAGS.random_samples)
            row = rows[key]
            print(
                f"  {row['tflite_kb']:.1f} kB, ratio {row['ratio']:.3f}, "
                f"{row['convert_and_verify_s']:.0f} s",
                flush=True,
            )
            atomic.write_json(
                FLAGS.results, {"rows": list(rows.values()), "versions": lt.versions()}
            )
    note = (
        f"`python benchmarks/export_size.py --models={','.join(FLAGS.models)} "
        f"--tentacles={','.join(FLAGS.tentacles)}`; "
        f"rows present: {', '.join(sorted(rows))}."
    )
    if skipped:
        note += (
            f" Not run (time budget {FLAGS.time_budget_s:.0f} s): {', '.join(skipped)}; "
            "rerun the same command to add them."
        )
    if FLAGS.note:
        note += " " + FLAGS.note
    atomic.write_text(FLAGS.output, render(list(rows.values()), note))
    print(f"wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
