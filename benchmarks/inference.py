"""Export cost and interpreter latency: branched vs fused TentacleNet vs the FP32 model.

Per model and n: LCE conversion time, op counts and bytes of the branched and the
fused export, and of the float TFLite model; single-image latency (min and
median of `--runs` runs, 1 and 2 threads).

!!! warning
    The LCE Python interpreter on x86 runs LCE's reference/fallback kernels: these
    latencies prove nothing about ARM speed (LCE has no optimised x86 kernels). They
    compare forms against each other on the same machine, nothing more. The float
    model runs in TFLite's interpreter with its default XNNPACK delegate.

    python benchmarks/inference.py --models=nin,resnet9,fernet --n=1,3,5,8 --out=results/
"""

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import larq_tentacle as lt  # noqa: E402  (selects Keras 2 before TensorFlow loads)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from larq_tentacle.core import fusion  # noqa: E402
from larq_tentacle.deploy import census  # noqa: E402
from larq_tentacle.utils import atomic  # noqa: E402
from larq_tentacle.utils.tables import markdown_table  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="nin", help=f"comma-separated, from {lt.list_models()}")
    parser.add_argument("--n", default="1,3,5,8", help="comma-separated tentacle counts")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=30, help="timed single-image runs per setting")
    parser.add_argument(
        "--input-size", type=int, default=None, help="square input side (default: the model's)"
    )
    parser.add_argument("--out", default=None, help="folder for inference.{md,json}")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.n = [int(v) for v in args.n.split(",") if v]
    args.threads = [int(v) for v in args.threads.split(",") if v]
    unknown = sorted(set(args.models) - set(lt.list_models()))
    if unknown:
        parser.error(f"unknown models {unknown}; available: {lt.list_models()}")
    return args


def _latency(invoke, runs: int) -> dict:
    invoke()  # first run allocates
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        invoke()
        times.append(1000 * (time.perf_counter() - start))
    return {"min_ms": min(times), "median_ms": statistics.median(times)}


def lce_latency(
    flatbuffer: bytes, x: np.ndarray, *, threads: int, indirect: bool, runs: int
) -> dict:
    import larq_compute_engine as lce

    interpreter = lce.testing.Interpreter(
        flatbuffer, num_threads=threads, use_indirect_bgemm=indirect
    )
    return _latency(lambda: interpreter.predict(x, verbose=0), runs)


def float_latency(flatbuffer: bytes, x: np.ndarray, *, threads: int, runs: int) -> dict:
    interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def invoke():
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return _latency(invoke, runs)


def _row(model_name, n, form, flatbuffer, seconds, latencies):
    ops = census.op_census(flatbuffer)
    row = dict(
        model=model_name,
        n=n,
        form=form,
        convert_s=seconds,
        bytes=len(flatbuffer),
        ops=sum(ops["ops"].values()),
        bconv=ops["ops"].get("LceBconv2d", 0),
        op_counts=ops["ops"],
    )
    row.update(latencies)
    return row


def run(args) -> dict:
    import larq_compute_engine as lce

    rows = []
    for model_name in args.models:
        spec = lt.get_spec(model_name)
        shape = (
            spec.input_shape
            if args.input_size is None
            else (args.input_size, args.input_size, spec.input_shape[2])
        )
        x = np.random.default_rng(0).normal(size=(1,) + tuple(shape)).astype(np.float32)

        float_model = lt.build(model_name, precision="float", input_shape=shape)
        start = time.perf_counter()
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(float_model).convert()
        seconds = time.perf_counter() - start
        latencies = {
            f"float_{t}t_ms": float_latency(flatbuffer, x, threads=t, runs=args.runs)["min_ms"]
            for t in args.threads
        }
        rows.append(_row(model_name, 1, "fp32 (XNNPACK)", flatbuffer, seconds, latencies))
        print(f"{model_name} fp32: converted in {seconds:.1f} s, {latencies}", flush=True)

        for n in args.n:
            # pseudo-Hadamard init: with init="copy" all tentacles are equal and the
            # converter merges the duplicates, which would flatter the branched export
            branched = lt.build(model_name, tentacles=n, input_shape=shape, seed=n)
            forms = [("branched", branched)]
            if n > 1:
                forms.append(("fused", fusion.fuse(branched, check_lce=False)))
            for form, model in forms:
                start = time.perf_counter()
                flatbuffer = lce.convert_keras_model(model)
                seconds = time.perf_counter() - start
                latencies = {}
                for threads in args.threads:
                    timing = lce_latency(
                        flatbuffer, x, threads=threads, indirect=True, runs=args.runs
                    )
                    latencies[f"indirect_{threads}t_ms"] = timing["min_ms"]
                    latencies[f"indirect_{threads}t_median_ms"] = timing["median_ms"]
                    if form == "branched":  # the default kernel refuses grouped convs
                        latencies[f"default_{threads}t_ms"] = lce_latency(
                            flatbuffer, x, threads=threads, indirect=False, runs=args.runs
                        )["min_ms"]
                rows.append(_row(model_name, n, form, flatbuffer, seconds, latencies))
                print(
                    f"{model_name} n={n} {form}: converted in {seconds:.1f} s, {latencies}",
                    flush=True,
                )
    return dict(
        benchmark="inference",
        device=(
            f"{platform.machine()}, {os.cpu_count()} cores "
            "(LCE x86 reference kernels: not ARM speed)"
        ),
        runs=args.runs,
        threads=args.threads,
        versions=lt.versions(),
        command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        rows=rows,
    )


def to_markdown(result: dict) -> str:
    threads = result["threads"]
    columns = ["model", "n", "form", "convert_s", "bytes", "ops", "bconv"]
    headers = ["model", "n", "form", "convert s", "bytes", "ops", "LceBconv2d"]
    for t in threads:
        columns += [f"indirect_{t}t_ms", f"default_{t}t_ms", f"float_{t}t_ms"]
        headers += [
            f"LCE indirect {t}t min ms",
            f"LCE default {t}t min ms",
            f"FP32 XNNPACK {t}t min ms",
        ]
    rows = [{c: row.get(c, "") for c in columns} for row in result["rows"]]
    return (
        f"Export and single-image latency on {result['device']}; min of {result['runs']} runs. "
        "x86 LCE timings use reference kernels and do not predict ARM speed.\n\n"
        + markdown_table(rows, columns, headers)
        + "\n"
    )


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    if args.out:
        atomic.write_json(os.path.join(args.out, "inference.json"), result)
        atomic.write_text(os.path.join(args.out, "inference.md"), markdown)


if __name__ == "__main__":
    main()
