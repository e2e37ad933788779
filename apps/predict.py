"""Top-k predictions of an exported TentacleNet `.tflite` on images, with the LCE interpreter.

    python apps/predict.py --model=nin5.tflite cat.png dog.jpg batch.npy

This is the script to copy to the device next to `nin5.tflite` and its sidecar
`nin5.tflite.json`. It needs numpy, Pillow, absl-py and the `larq_compute_engine`
Python package (its interpreter; that package imports TensorFlow). It does not
need larq or larq_tentacle: it is one self-contained file on purpose.

Inputs:
* PNG/JPEG (Pillow) and `.npy` arrays of uint8 pixels (H, W, C), (H, W) or a
  batch (N, H, W[, C]) are raw images: they get the model's own preprocessing
  from the sidecar (resize to the input size, grey -> RGB if the model was
  trained that way, x = (pixels / pixel_scale - mean) / std).
* `.npy` float32 arrays are taken as already preprocessed and must match the
  input shape exactly.

An int8 export with int8 input/output (`lt.export(..., quantize="int8",
int8_io=True)`) takes the preprocessed image quantized with the sidecar's
`quantization.input` scale and zero point, and its output is dequantized with
`quantization.output`'s: q = clip(round(x / scale) + zero_point, -128, 127).
"""

import json
import os
import sys

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPY_SUFFIX = ".npy"


class PredictError(ValueError):
    """A bad model file, sidecar or image; the message names it and the fix."""


def read_sidecar(model_path: str, sidecar_path: str = None) -> dict:
    sidecar_path = sidecar_path or model_path + ".json"
    if not os.path.isfile(sidecar_path):
        raise PredictError(
            f"No sidecar {sidecar_path!r} next to the model. It holds the input size, the "
            "normalization and the class names. Fix: copy <model>.tflite.json (written by "
            "lt.export / apps/export.py) next to the .tflite, or pass --sidecar=PATH."
        )
    try:
        with open(sidecar_path, encoding="utf-8") as file:
            sidecar = json.load(file)
    except (OSError, ValueError) as error:
        raise PredictError(
            f"The sidecar {sidecar_path!r} is not valid JSON ({error}). Fix: export again."
        ) from error
    for key in ("input_shape", "preprocessing"):
        if key not in sidecar:
            raise PredictError(
                f"The sidecar {sidecar_path!r} lacks {key!r}. Fix: export again with lt.export."
            )
    return sidecar


def load_model_bytes(model_path: str, sidecar: dict) -> bytes:
    if not os.path.isfile(model_path):
        raise PredictError(
            f"No model file at {model_path!r}. Fix: pass --model=PATH/TO/model.tflite."
        )
    with open(model_path, "rb") as file:
        data = file.read()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise PredictError(
            f"{model_path!r} is not a TFLite flatbuffer (no 'TFL3' identifier). Fix: pass the "
            ".tflite written by lt.export, not the Keras model or another file."
        )
    expected = sidecar.get("tflite_bytes")
    if expected is not None and expected != len(data):
        raise PredictError(
            f"{model_path!r} has {len(data)} bytes but its sidecar says {expected}: the file is "
            "truncated or belongs to another export. Fix: copy the .tflite again (and its .json)."
        )
    return data


def make_interpreter(data: bytes, *, use_indirect_bgemm: bool, num_threads: int = 1):
    try:
        from larq_compute_engine.tflite.python.interpreter import Interpreter
    except ImportError as error:
        raise PredictError(
            "The LCE interpreter is not installed (`import larq_compute_engine` failed: "
            f"{error}). Fix: pip install larq-compute-engine==0.16.0 (x86-64, macOS, Windows); "
            "on a 64-bit Raspberry Pi build it from source, see docs/deploy.md."
        ) from error
    try:
        return Interpreter(data, num_threads=num_threads, use_indirect_bgemm=use_indirect_bgemm)
    except (RuntimeError, ValueError) as error:  # what LCE's C++ wrapper raises
        raise PredictError(
            f"The LCE interpreter rejected the model: {str(error).strip()[:500]}. Fix: export it "
            "again with the same LCE version as this interpreter; fused (grouped) models need "
            "--use_indirect_bgemm."
        ) from error


def read_images(path: str) -> np.ndarray:
    """The images in `path` as (N, H, W, C) uint8 (raw) or float32 (preprocessed)."""
    lower = path.lower()
    if not os.path.isfile(path):
        raise PredictError(f"No image file at {path!r}.")
    if lower.endswith(NPY_SUFFIX):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:  # unreadable, not .npy, truncated
            raise PredictError(f"{path!r} is not a readable .npy array ({error}).") from error
        if array.dtype == np.uint8:
            if array.ndim == 2:
                array = array[None, :, :, None]
            elif array.ndim == 3:
                array = array[None] if array.shape[-1] in (1, 3, 4) else array[..., None]
            if array.ndim != 4:
                raise PredictError(
                    f"{path!r} has shape {array.shape}; "
                    "expected uint8 pixels (H, W), (H, W, C) or (N, H, W, C)."
                )
            return array
        if array.dtype in (np.float32, np.float64):
            if array.ndim == 3:
                array = array[None]
            return array.astype(np.float32)
        raise PredictError(
            f"{path!r} holds {array.dtype} values; expected uint8 pixels (raw images) or float32 "
            "(already preprocessed). Fix: save it with .astype(np.uint8) or .astype(np.float32)."
        )
    if lower.endswith(IMAGE_SUFFIXES):
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.load()
                mode = image.mode
                if mode in ("P", "PA"):  # palette images: expand to their real colours
                    image = image.convert(
                        "RGBA" if "A" in mode or "transparency" in image.info else "RGB"
                    )
                    mode = image.mode
                if mode in ("I;16", "I", "F"):
                    raise PredictError(
                        f"{path!r} has {mode!r} pixels (16/32 bit); the model takes 8-bit images. "
                        "Fix: convert it to 8-bit grey or RGB."
                    )
                array = np.asarray(image)
        except PredictError:
            raise
        # Pillow reports a file it cannot identify or decode as OSError, a broken header
        # as SyntaxError, and an image too large to open safely as DecompressionBombError.
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise PredictError(f"{path!r} is not a readable image ({error}).") from error
        if array.ndim == 2:
            array = array[:, :, None]
        return array[None].astype(np.uint8)
    raise PredictError(f"{path!r}: unsupported file type; pass .png, .jpg/.jpeg or .npy files.")


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with half-pixel centers and no antialiasing: tf.image.resize's default."""
    n, in_h, in_w, c = images.shape
    if (in_h, in_w) == (height, width):
        return images.astype(np.float32)

    def axis(out_size, in_size):
        centers = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
        centers = np.clip(centers, 0, in_size - 1)
        low = np.floor(centers).astype(np.int64)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (centers - low).astype(np.float32)

    y0, y1, wy = axis(height, in_h)
    x0, x1, wx = axis(width, in_w)
    x = images.astype(np.float32)
    top = x[:, y0] * (1 - wy)[None, :, None, None] + x[:, y1] * wy[None, :, None, None]
    return top[:, :, x0] * (1 - wx)[None, None, :, None] + top[:, :, x1] * wx[None, None, :, None]


def preprocess(images: np.ndarray, sidecar: dict, *, source: str = "the images") -> np.ndarray:
    """Raw uint8 images -> the model's float32 input, following the sidecar's preprocessing."""
    height, width, channels = (int(d) for d in sidecar["input_shape"])
    if images.dtype == np.float32:
        if images.shape[1:] != (height, width, channels):
            raise PredictError(
                f"{source}: preprocessed float32 input of shape {images.shape[1:]}, but the model "
                f"takes {(height, width, channels)}. Fix: pass raw uint8 pixels (they get resized) "
                "or float32 arrays of exactly the input shape."
            )
        return images
    prep = sidecar["preprocessing"]
    have = images.shape[-1]
    if have == 4 and channels in (1, 3):
        raise PredictError(
            f"{source} has 4 channels (RGBA); the model takes {channels}. Fix: drop the alpha "
            f"channel (PIL: image.convert('{'L' if channels == 1 else 'RGB'}'))."
        )
    if have != channels:
        grey_to_rgb = isinstance(prep, dict) and prep.get("grey_to_rgb")
        if have == 1 and channels == 3 and grey_to_rgb:
            images = np.repeat(images, 3, axis=-1)
        else:
            names = {1: "grey", 3: "RGB"}
            raise PredictError(
                f"{source} has {have} channel(s) ({names.get(have, '?')}), but the model takes "
                f"{channels} ({names.get(channels, '?')}). Fix: convert the image, e.g. with PIL "
                f"image.convert('{'L' if channels == 1 else 'RGB'}')."
            )
    if not isinstance(prep, dict):  # "none": the model takes pixels as they are
        if images.shape[1:3] != (height, width):
            raise PredictError(
                f"{source} is {images.shape[2]}x{images.shape[1]} but the model takes "
                f"{width}x{height} and its sidecar has no resize rule (preprocessing 'none'). "
                f"Fix: resize the images to {width}x{height}."
            )
        return images.astype(np.float32)
    if prep.get("resize", "bilinear") != "bilinear":
        raise PredictError(
            f"Unsupported resize {prep.get('resize')!r} in the sidecar; only 'bilinear'."
        )
    x = resize_bilinear(images, height, width)
    scale = float(prep.get("pixel_scale", 255.0))
    mean = np.asarray(prep["mean"], dtype=np.float32)
    std = np.asarray(prep["std"], dtype=np.float32)
    return ((x / scale - mean) / std).astype(np.float32)


def quantize_input(x: np.ndarray, sidecar: dict) -> np.ndarray:
    """Float model input -> the int8 the file takes, when the sidecar says it takes int8."""
    io = (sidecar.get("quantization") or {}).get("input") or {}
    if io.get("dtype") != "int8":
        return x
    scale, zero_point = io.get("scale"), io.get("zero_point")
    if not scale or zero_point is None:
        raise PredictError(
            "The sidecar says the model takes int8 input but gives no scale/zero_point. "
            "Fix: export again with lt.export(..., quantize='int8', int8_io=True)."
        )
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def dequantize_output(y: np.ndarray, sidecar: dict) -> np.ndarray:
    """The file's output as float scores (int8 output: (q - zero_point) * scale)."""
    io = (sidecar.get("quantization") or {}).get("output") or {}
    if io.get("dtype") != "int8":
        return np.asarray(y, np.float32)
    return (np.asarray(y, np.float32) - io["zero_point"]) * io["scale"]


def top_k(probabilities: np.ndarray, k: int, class_names=None) -> list:
    order = np.argsort(-probabilities)[:k]
    return [
        {
            "index": int(i),
            "label": class_names[i] if class_names and i < len(class_names) else str(int(i)),
            "score": float(probabilities[i]),
        }
        for i in order
    ]


def predict_files(
    model_path, files, *, top=5, sidecar_path=None, use_indirect_bgemm=None, num_threads=1
):
    """[{file, index, top: [{index, label, score}, ...]}] for every image in `files`."""
    if not files:
        raise PredictError(
            "No images given. Fix: python apps/predict.py --model=m.tflite image.png ..."
        )
    sidecar = read_sidecar(model_path, sidecar_path)
    data = load_model_bytes(model_path, sidecar)
    if use_indirect_bgemm is None:
        use_indirect_bgemm = bool(sidecar.get("kernel", {}).get("use_indirect_bgemm", False))
    batches = [(path, preprocess(read_images(path), sidecar, source=path)) for path in files]
    interpreter = make_interpreter(
        data, use_indirect_bgemm=use_indirect_bgemm, num_threads=num_threads
    )
    class_names = sidecar.get("class_names")
    results = []
    for path, x in batches:
        raw = interpreter.predict(quantize_input(x, sidecar))
        outputs = dequantize_output(raw, sidecar).reshape(len(x), -1)
        for i, probabilities in enumerate(outputs):
            results.append(
                {"file": path, "index": i, "top": top_k(probabilities, top, class_names)}
            )
    return results


def format_results(results) -> str:
    lines = []
    for result in results:
        name = result["file"] + (f"[{result['index']}]" if result["index"] else "")
        ranked = "  ".join(f"{r['label']} {r['score']:.4f}" for r in result["top"])
        lines.append(f"{name}: {ranked}")
    return "\n".join(lines)


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    try:
        results = predict_files(
            FLAGS.model,
            argv[1:],
            top=FLAGS.top_k,
            sidecar_path=FLAGS.sidecar,
            use_indirect_bgemm=FLAGS.use_indirect_bgemm,
            num_threads=FLAGS.num_threads,
        )
    except (PredictError, OSError) as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results) if FLAGS.json else format_results(results))
    return 0


def _define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "The exported .tflite.", required=True)
    flags.DEFINE_integer("top_k", 5, "How many classes to print per image.", lower_bound=1)
    flags.DEFINE_string("sidecar", None, "The export's sidecar JSON (default: <model>.json).")
    flags.DEFINE_bool(
        "use_indirect_bgemm",
        None,
        "Use LCE's indirect BGEMM bconv kernel "
        "(default: what the sidecar requires; fused models need it).",
    )
    flags.DEFINE_integer("num_threads", 1, "Interpreter threads.", lower_bound=1)
    flags.DEFINE_bool("json", False, "Print the results as JSON.")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
