"""Real architectures through the whole path (issue 15, item 4).

Each stock `tf.keras.applications` CNN (weights=None, 32x32x3, 10 classes) is
tentaclized at n=2, trained a few steps on real images (scikit-learn's digits at
32x32 through `larq_tentacle.data`), exported with verification on (parity with
Keras on real and random inputs, the strict op rules), and its op census checked:
every binary conv is an `LceBconv2d`, the only float convs in the tentacles are the
layers LCE cannot binarize. The small, fast checks of the same rules on toy models
are in tests/test_float_layers.py.
"""

import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.data.pipeline import load_arrays
from larq_tentacle.deploy import rules
from larq_tentacle.utils.seeding import seed_everything, use_deterministic_ops

SHAPE = (32, 32, 3)
STEPS = 40
BATCH = 32
SAMPLE = 64

# model -> (tentacle layers kept float, convs that got a BatchNorm from the pre-activation
# rewrite), per tentacle
EXPECTED = {
    "VGG16": (0, 0),
    "ResNet50": (0, 0),
    "DenseNet121": (0, 61),
    "MobileNetV2": (17, 0),  # the DepthwiseConv2D of its 17 inverted-residual blocks
}


@pytest.fixture(scope="module")
def digits32():
    return load_arrays("digits", input_shape=SHAPE)


def _train(model, data, seed=0):
    use_deterministic_ops(True)  # the same training whichever tests ran first
    seed_everything(seed)
    model.compile(
        tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(len(data.y_train), seed=seed)
        .repeat()
        .batch(BATCH)
    )
    model.fit(dataset, steps_per_epoch=STEPS, epochs=1, verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_application_tentaclizes_trains_and_exports_verified(name, digits32, tmp_path):
    base = getattr(tf.keras.applications, name)(weights=None, input_shape=SHAPE, classes=10)
    model = lt.tentaclize(base, tentacles=2)
    structure = lt.layout(model)
    floats, rewritten = EXPECTED[name]
    assert len(structure.float_layers) == floats, structure.float_layers
    assert len(structure.preactivation) == rewritten
    _train(model, digits32)

    result = lt.export(
        model, tmp_path / f"{name}.tflite", sample=digits32.x_test[:SAMPLE], preprocessing=None
    )

    report = result.report
    assert report.passed and not report.violations
    assert report.max_abs_diff <= report.atol
    binary_convs = [layer for layer in model.layers if rules.is_binary_conv(layer)]
    assert report.census["ops"]["LceBconv2d"] == len(binary_convs) > 0
    # the only float convs: the stem's, the head's and per tentacle the layers kept float
    assert sum(report.census["float_compute_ops"].values()) == 2 + 2 * floats
    # agreement with Keras on the real inputs (export's verify: no second interpreter run)
    assert report.top1_agreement_sample >= 0.95, report.summary()
    print(f"{name}: {report.tflite_bytes / 1024:.0f} kB, paper {report.paper_size_kb} kB; "
          f"top-1 agreement {report.top1_agreement_sample:.3f} on {SAMPLE} real inputs, "
          f"{report.sign_ties_sample} sign ties")
