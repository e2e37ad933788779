"""`tentaclize` on float CNNs outside the registry, and every bad input of `build`."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.core.layout import binary_layers


def vgg_chain(num_classes=5):
    """Conv blocks -> Flatten -> Dense(64) -> Dense(C): the dense-classifier head (Fig. 2-b)."""
    inputs = tf.keras.Input((16, 16, 3), name="pixels")
    x = tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c1")(inputs)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="c2")(x)
    x = tf.keras.layers.BatchNormalization(name="n2")(x)
    x = tf.keras.layers.ReLU(name="r2")(x)
    x = tf.keras.layers.MaxPooling2D(name="p2")(x)
    x = tf.keras.layers.Conv2D(64, 3, padding="same", name="c3")(x)
    x = tf.keras.layers.BatchNormalization(name="n3")(x)
    x = tf.keras.layers.ReLU(name="r3")(x)
    x = tf.keras.layers.MaxPooling2D(name="p3")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = tf.keras.layers.Dense(64, name="fc1")(x)
    x = tf.keras.layers.BatchNormalization(name="n4")(x)
    x = tf.keras.layers.ReLU(name="r4")(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="vgg_chain")


def small_resnet(num_classes=4):
    """A residual net ending in a conv over C logits + global pooling (Fig. 2-a)."""
    inputs = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = tf.keras.layers.ReLU(name="stem_relu")(x)
    for block in (1, 2):
        y = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name=f"b{block}_conv")(x)
        y = tf.keras.layers.BatchNormalization(name=f"b{block}_bn")(y)
        x = tf.keras.layers.Add(name=f"b{block}_add")([x, y])
        x = tf.keras.layers.ReLU(name=f"b{block}_relu")(x)
    x = tf.keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = tf.keras.layers.Softmax(name="probs")(x)
    return tf.keras.Model(inputs, outputs, name="small_resnet")


def _is_plus_one_everywhere(model, layer_name, x):
    """Would the binary input of `layer_name` be constant? (the ReLU-before-sign bug)"""
    probe = tf.keras.Model(model.inputs, model.get_layer(layer_name).input)
    return bool(np.all(probe(x, training=False).numpy() >= 0))


@pytest.mark.parametrize("builder,variant,features", [(vgg_chain, "b", 64), (small_resnet, "a", 4)])
@pytest.mark.parametrize("tentacles", [1, 3])
def test_tentaclize_custom_cnns(builder, variant, features, tentacles):
    float_model = builder()
    model = lt.tentaclize(float_model, tentacles=tentacles, seed=1)
    layout = lt.layout(model)
    assert layout.tentacles == tentacles and layout.head_variant == variant
    assert model.output_shape == float_model.output_shape
    if tentacles > 1 or variant == "b":
        assert model.get_layer("head_dense").input_shape[-1] == tentacles * features
    # first and last weight layers stay float, every inner one is binary
    binary = {layer.name for layer in binary_layers(model)}
    expected = {
        layer.name
        for layers in layout.tentacle_layers.values()
        for layer in layers
        if isinstance(layer, lq.layers.QuantConv2D)
    }
    assert binary == expected and len(binary) == tentacles * (2 if builder is small_resnet else 3)
    # no binary input is fed by a ReLU: its sign would be +1 everywhere
    x = np.random.default_rng(0).standard_normal((8, *model.input_shape[1:])).astype("float32")
    for name in binary:
        assert not _is_plus_one_everywhere(model, name, x), name
    # it trains with plain Keras
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = np.arange(8) % model.output_shape[-1]
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_dense_inside_a_tentacle_becomes_a_binary_1x1_conv():
    model = lt.tentaclize(vgg_chain(), tentacles=2)
    layer = model.get_layer("t2_fc1")
    assert isinstance(layer, lq.layers.QuantConv2D) and layer.kernel_size == (1, 1)
    assert layer.get_weights()[0].shape == (1, 1, 4 * 4 * 64, 64)


def test_copy_init_starts_every_tentacle_from_the_float_weights():
    float_model = vgg_chain()
    model = lt.tentaclize(float_model, tentacles=2, init="copy")
    for index in (1, 2):
        np.testing.assert_array_equal(
            model.get_layer(f"t{index}_c3").get_weights()[0],
            float_model.get_layer("c3").get_weights()[0],
        )
        np.testing.assert_array_equal(
            np.reshape(model.get_layer(f"t{index}_fc1").get_weights()[0], (-1, 64)),
            float_model.get_layer("fc1").get_weights()[0],
        )
        for got, want in zip(
            model.get_layer(f"t{index}_n3").get_weights(), float_model.get_layer("n3").get_weights()
        ):
            np.testing.assert_array_equal(got, want)
    # the stem is the float model's own first layer
    np.testing.assert_array_equal(
        model.get_layer("stem_c1").get_weights()[0], float_model.get_layer("c1").get_weights()[0]
    )


def test_hadamard_init_differs_per_tentacle_and_per_seed():
    float_model = vgg_chain()
    a = lt.tentaclize(float_model, tentacles=2, seed=0)
    b = lt.tentaclize(float_model, tentacles=2, seed=1)
    k = lambda m, i: m.get_layer(f"t{i}_c3").get_weights()[0]  # noqa: E731
    assert not np.array_equal(k(a, 1), k(a, 2))
    assert not np.array_equal(k(a, 1), k(b, 1))
    np.testing.assert_array_equal(k(a, 1), k(lt.tentaclize(float_model, tentacles=2, seed=0), 1))
    assert set(np.unique(np.abs(k(a, 1)))) == {np.float32(0.05)}


def test_one_tentacle_is_the_plain_bnn_of_the_float_model():
    float_model = small_resnet()
    bnn = lt.tentaclize(float_model, tentacles=1)
    assert "head_concat" not in [layer.name for layer in bnn.layers]
    assert lt.paper_size_kb(bnn, exact=True) < lt.paper_size_kb(float_model, exact=True) / 8


# ---- bad input: every error names the bad value --------------------------------------

@pytest.mark.parametrize("tentacles", [0, -1, 2.5, "5", True, None])
def test_build_rejects_bad_tentacles(tentacles):
    with pytest.raises(ValueError, match="tentacles") as error:
        lt.build("fernet", tentacles=tentacles)
    assert repr(tentacles) in str(error.value)


def test_build_rejects_unknown_model_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'ninn'.*\['fernet', 'nin', 'resnet9'\]"):
        lt.build("ninn")


@pytest.mark.parametrize("precision", ["binray", "fp32", "Float", 1])
def test_build_rejects_precision_typos(precision):
    with pytest.raises(ValueError, match="precision") as error:
        lt.build("nin", precision=precision)
    assert repr(precision) in str(error.value)


def test_precision_typo_gets_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'binary'"):
        lt.build("nin", precision="binray")


def test_float_with_several_tentacles_is_refused():
    with pytest.raises(ValueError, match="tentacles=3"):
        lt.build("nin", precision="float", tentacles=3)


@pytest.mark.parametrize(
    "name,shape",
    [
        ("nin", (2, 2, 3)),
        ("resnet9", (4, 4, 3)),
        ("fernet", (8, 8, 1)),
        ("nin", (32, 32)),
        ("nin", "32x32"),
    ],
)
def test_build_rejects_input_shapes_too_small_or_malformed(name, shape):
    with pytest.raises(ValueError, match="input_shape") as error:
        lt.build(name, input_shape=shape)
    assert str(tuple(shape) if not isinstance(shape, str) else repr(shape)) in str(error.value)


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.0, "10"])
def test_build_rejects_fewer_than_two_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes") as error:
        lt.build("nin", num_classes=num_classes)
    assert repr(num_classes) in str(error.value)


def test_build_rejects_unknown_options():
    with pytest.raises(TypeError, match="projection_shortcut"):
        lt.build("nin", projection_shortcuts=2)
    with pytest.raises(ValueError, match="projection_shortcuts.*3"):
        lt.build("resnet9", projection_shortcuts=3)


def test_tentaclize_rejects_sequential_models_with_the_fix():
    sequential = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1)),
            tf.keras.layers.Conv2D(4, 3),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(2),
        ]
    )
    with pytest.raises(TypeError, match="Sequential.*tf.keras.Model"):
        lt.tentaclize(sequential, tentacles=2)


def test_tentaclize_rejects_subclassed_models():
    class Net(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = tf.keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(tf.zeros((1, 8, 8, 1)))
    with pytest.raises(TypeError, match="subclassed"):
        lt.tentaclize(net, tentacles=2)


def test_tentaclize_rejects_models_without_a_conv_first_layer():
    inputs = tf.keras.Input((16,))
    x = tf.keras.layers.Dense(8, name="d1")(inputs)
    x = tf.keras.layers.Dense(8, name="d2")(x)
    outputs = tf.keras.layers.Dense(2, name="d3")(x)
    with pytest.raises(ValueError, match="'d1'.*Dense"):
        lt.tentaclize(tf.keras.Model(inputs, outputs), tentacles=2)


def test_tentaclize_rejects_binary_models_and_bad_init():
    with pytest.raises(ValueError, match="already has quantized layers"):
        lt.tentaclize(lt.build("fernet", input_shape=(16, 16, 1)), tentacles=2)
    with pytest.raises(ValueError, match="'hadamrd'"):
        lt.tentaclize(vgg_chain(), tentacles=2, init="hadamrd")


def test_dropout_in_front_of_a_binary_input_is_removed():
    """Dropout zeroes activations; sign(0) = +1, so in front of a sign() it injects +1s.

    Measured on digits (NiN at 8x8, BNN, 10 epochs): 91.4 % with the dropout kept,
    97.8 % without.
    """
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="c1")(inputs)
    x = tf.keras.layers.BatchNormalization(name="n1")(x)
    x = tf.keras.layers.Dropout(0.5, name="d2")(x)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="c2")(x)
    x = tf.keras.layers.BatchNormalization(name="n2")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = tf.keras.layers.Dropout(0.5, name="d3")(x)  # feeds the float classifier: kept
    outputs = tf.keras.layers.Dense(3, name="fc")(x)
    model = lt.tentaclize(tf.keras.Model(inputs, outputs), tentacles=2)
    names = [layer.name for layer in model.layers]
    assert not any(name.endswith("_d2") for name in names)
    assert "t1_d3" in names and "t2_d3" in names
