"""Small shared helpers for the test modules (imported as `helpers`)."""

import numpy as np

import larq_tentacle as lt


# The smallest input each registered model accepts keeps the tests fast; sizes and
# structure do not depend on the spatial size (except FerNet's full-map fc conv).
def small_input_shape(name: str):
    spec = lt.get_spec(name)
    return (spec.min_input_size, spec.min_input_size, spec.input_shape[-1])


def random_batch(model, batch: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *model.input_shape[1:])).astype("float32")
    y = rng.integers(0, model.output_shape[-1], size=batch)
    return x, y


def loaded_app(name: str):
    """Import `apps/<name>.py` as a module; a generator for module-scoped fixtures.

    The apps define absl flags at import, and several share names (`--workdir`,
    `--model`): absl refuses a second definition, so the flags this app added are
    removed again when the fixture ends.
    """
    import importlib.util
    import os

    from absl import flags

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "apps", f"{name}.py")
    before = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location(f"_app_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        for flag_name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, flag_name)


def run_main(app_module, argv, *, program: str):
    """Parse `argv` into the global absl FLAGS and call the app's `main`, like `app.run` would."""
    from absl import flags

    flags.FLAGS.unparse_flags()
    flags.FLAGS([program] + list(argv))
    try:
        return app_module.main([program])
    finally:
        flags.FLAGS.unparse_flags()


def write_digits_folder(root, *, classes=(0, 1, 2), per_class=40, side=None):
    """scikit-learn's real digits as PNG files, one subfolder per class ("digit_0", ...).

    `side` upsamples the 8x8 images (nearest) so the folder holds larger files.
    Returns the folder.
    """
    import os

    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = os.fspath(root)
    for label in classes:
        folder = os.path.join(root, f"digit_{label}")
        os.makedirs(folder, exist_ok=True)
        images = digits.images[digits.target == label][:per_class]
        for index, image in enumerate(images):
            pixels = np.round(image * (255.0 / 16.0)).astype(np.uint8)
            picture = Image.fromarray(pixels, mode="L")
            if side:
                picture = picture.resize((side, side), Image.NEAREST)
            picture.save(os.path.join(folder, f"{index:03d}.png"))
    return root


def interrupting_dataset(x, y, *, batch_size: int, crash_after=None):
    """Training batches of (x, y) from a generator that raises RuntimeError("interrupted")
    once `crash_after` batches were read (counted over every epoch): a run dying mid-fit,
    in-process, after its BackupAndRestore state of the completed epochs was written."""
    import tensorflow as tf

    count = [0]

    def batches():
        for start in range(0, len(x), batch_size):
            count[0] += 1
            if crash_after is not None and count[0] > crash_after:
                raise RuntimeError("interrupted")
            yield x[start : start + batch_size], y[start : start + batch_size]

    signature = (
        tf.TensorSpec((None, *x.shape[1:]), tf.float32),
        tf.TensorSpec((None,), tf.as_dtype(y.dtype)),
    )
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def randomize_weights(model, seed=0, *, also=(), also_range=(0.05, 0.6)):
    """Distinct, non-trivial weights: BatchNorm statistics (positive gamma and variance),
    binary kernels in [-1, 1], and layers of the types `also` uniform in `also_range`."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            weights = []
            for weight in layer.weights:
                short = weight.name.split("/")[-1]
                if short.startswith(("gamma", "moving_variance")):
                    weights.append(rng.uniform(0.5, 1.5, weight.shape))
                else:
                    weights.append(rng.normal(0.0, 0.5, weight.shape))
            layer.set_weights([w.astype(np.float32) for w in weights])
        elif hasattr(layer, "kernel_quantizer"):
            layer.set_weights(
                [rng.uniform(-1, 1, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
        elif also and isinstance(layer, also):
            low, high = also_range
            layer.set_weights(
                [rng.uniform(low, high, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
    return model
