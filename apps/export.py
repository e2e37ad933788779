"""Export a trained TentacleNet to a verified Larq Compute Engine `.tflite`.

    python apps/export.py --workdir=runs/nin5              # best model -> runs/nin5/nin5.tflite
    python apps/export.py --model=model.h5 --output=m.tflite --preprocessing=preprocessing.json
    python apps/export.py --workdir=runs/nin5 --quantize=int8   # int8_model.h5 if fine-tuned

Writes the `.tflite` and its sidecar `<output>.json` (versions, model, tentacles,
input shape, preprocessing, class names, sizes, op census, kernel requirement),
both only after the LCE interpreter matched Keras and the strict op checks held.
Prints the verification summary. Exit status 0 on success, 2 on a bad input or a
failed check (with the reason on stderr), and nothing is written then.
"""

import sys

from absl import app, flags

import larq_tentacle  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# The choices only: the deploy modules that convert load on the first export.
from larq_tentacle.deploy.options import (
    DEFAULT_ATOL,
    DEFAULT_INT8_STEPS,
    DEFAULT_RANDOM_SAMPLES,
    QUANTIZE,
    TARGETS,
    TENSOR_NAMES,
)


def define_flags(flag_values=flags.FLAGS):
    """The app's flags, defined into `flag_values` (tests pass their own FlagValues)."""
    d = dict(flag_values=flag_values)
    flags.DEFINE_string(
        "workdir", None,
        "A training run's folder (best_model.h5, preprocessing.json, config.json).", **d,
    )
    flags.DEFINE_string(
        "model", None, "A saved model (.h5, .keras or SavedModel folder) instead of --workdir.",
        **d,
    )
    flags.DEFINE_string(
        "output", None,
        "The .tflite to write (default with --workdir: <workdir>/<name>.tflite).", **d,
    )
    flags.DEFINE_string(
        "preprocessing", None, "preprocessing.json for --model (default: none).", **d
    )
    flags.DEFINE_string(
        "sample",
        "auto",
        "Parity inputs: 'auto' (the run's test images, if available), 'none' or a .npy of "
        "preprocessed float32 images.",
        **d,
    )
    flags.DEFINE_integer(
        "num_samples", 64, "Test images used by --sample=auto.", lower_bound=1, **d
    )
    flags.DEFINE_string(
        "data_dir", None, "Where the run's dataset lives (default: its config.json).", **d
    )
    flags.DEFINE_enum("target", "arm", list(TARGETS), "LCE converter target.", **d)
    flags.DEFINE_bool(
        "fused", False,
        "Fuse the tentacles into grouped binary convs (needs LCE's indirect BGEMM kernel).", **d,
    )
    flags.DEFINE_bool(
        "strict", True,
        "Fail if a tentacle conv is not an LceBconv2d or float ops leak into tentacles.", **d,
    )
    flags.DEFINE_bool("verify", True, "Check the .tflite against Keras before writing it.", **d)
    flags.DEFINE_float(
        "atol", DEFAULT_ATOL, "Largest allowed |tflite - keras| on the outputs.", **d
    )
    flags.DEFINE_integer(
        "random_samples", DEFAULT_RANDOM_SAMPLES, "Random inputs added to the parity check.",
        lower_bound=0, **d,
    )
    flags.DEFINE_enum(
        "quantize", "none", list(QUANTIZE),
        "int8: all that is not binary in int8, ranges calibrated on training images.", **d,
    )
    flags.DEFINE_bool("int8_io", False, "With --quantize=int8: int8 input and output.", **d)
    flags.DEFINE_string(
        "calibration", "auto",
        "With --quantize=int8: 'auto' (the run's training images) or a .npy of preprocessed "
        "float32 training images.", **d,
    )
    flags.DEFINE_integer(
        "calibration_samples", 512, "Training images used by --calibration=auto.",
        lower_bound=1, **d,
    )
    flags.DEFINE_float(
        "int8_steps", DEFAULT_INT8_STEPS,
        "int8 parity tolerance in output quantization steps.", **d,
    )
    flags.DEFINE_enum(
        "tensor_names",
        "compact",
        list(TENSOR_NAMES),
        "compact: each op's output named after its Keras layer, constants unnamed (smaller); "
        "converter: the converter's long TF-graph names.",
        **d,
    )


def run(FLAGS) -> int:
    """Export as the parsed flags say; 0 on success, 2 (reason on stderr) on bad input."""
    from larq_tentacle.deploy.exporting import export
    from larq_tentacle.deploy.tflite_file import TFLiteFileError
    from larq_tentacle.deploy.workdir import export_workdir

    options = dict(
        fused=FLAGS.fused,
        strict=FLAGS.strict,
        verify=FLAGS.verify,
        target=FLAGS.target,
        atol=FLAGS.atol,
        random_samples=FLAGS.random_samples,
        tensor_names=FLAGS.tensor_names,
    )
    if FLAGS.quantize == "int8":
        options.update(quantize="int8", int8_io=FLAGS.int8_io, int8_steps=FLAGS.int8_steps)
    elif FLAGS.int8_io:
        print("export: error: --int8_io needs --quantize=int8.", file=sys.stderr)
        return 2
    sample = None if FLAGS.sample == "none" else FLAGS.sample
    try:
        if (FLAGS.workdir is None) == (FLAGS.model is None):
            raise ValueError(
                "Pass exactly one of --workdir (a training run) or --model (a saved model)."
            )
        calibration = _calibration(FLAGS)
        if calibration is not None:
            options["calibration_data"] = calibration
        if FLAGS.workdir:
            result = export_workdir(
                FLAGS.workdir,
                output=FLAGS.output,
                sample=sample,
                num_samples=FLAGS.num_samples,
                data_dir=FLAGS.data_dir,
                calibration_samples=FLAGS.calibration_samples,
                **options,
            )
        else:
            if not FLAGS.output:
                raise ValueError("--model needs --output=PATH.tflite.")
            if sample == "auto":
                sample = None  # a bare model file has no dataset to draw from
            elif sample is not None:
                import numpy as np

                sample = np.load(sample, allow_pickle=False)
            model = FLAGS.model
            if FLAGS.quantize == "int8" and "calibration_data" not in options:
                model = _int8_model_file(FLAGS.model)
            result = export(
                model, FLAGS.output, sample=sample, preprocessing=FLAGS.preprocessing,
                source=FLAGS.model, **options,
            )
    except (ValueError, TypeError, OSError, NotImplementedError, TFLiteFileError) as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 2
    size_kb = result.sidecar["tflite_bytes"] / 1024
    print(f"wrote {result.path} ({size_kb:.1f} kB) and {result.sidecar_path}")
    quantization = result.sidecar.get("quantization")
    if quantization:
        io = quantization["input"]
        print(
            f"int8: input {io['dtype']} (scale {io['scale']:.6g}, zero point {io['zero_point']}), "
            f"output {quantization['output']['dtype']}"
        )
    if result.report is not None:
        print(result.report.summary())
    if result.sidecar["kernel"]["use_indirect_bgemm"]:
        print(
            "note: this model needs LCE's indirect BGEMM kernel "
            "(--use_indirect_bgemm=true on the device)."
        )
    return 0


def _int8_model_file(path):
    """The --model, loaded, if it already is an int8 model (its ranges set); else one error."""
    from larq_tentacle.core.int8 import is_int8_model
    from larq_tentacle.deploy.conversion import check_model

    model = check_model(path)
    if not is_int8_model(model):
        raise ValueError(
            "--quantize=int8 with --model needs --calibration=PATH.npy (preprocessed float32 "
            "training images); only a --workdir knows its training data (a fine-tuned "
            "int8_model.h5 needs none)."
        )
    return model


def _calibration(FLAGS):
    """The --calibration images as an array, or None ('auto': the workdir's training images,
    or the ranges a fine-tuned int8 --model already has)."""
    if FLAGS.quantize != "int8" or FLAGS.calibration == "auto":
        return None
    import numpy as np

    return np.load(FLAGS.calibration, allow_pickle=False)


def main(argv):
    del argv
    sys.exit(run(flags.FLAGS))


if __name__ == "__main__":
    define_flags()
    app.run(main)
