"""The paper's size accounting (Table 1, Table 2 TentacleNet rows; architectures.md §0)."""

import pytest
import tensorflow as tf

import larq_tentacle as lt

TABLE_1 = [
    # model, options, precision, tentacles, paper kB (exact match of the displayed number)
    ("nin", {}, "float", 1, 3778),
    ("nin", {}, "binary", 1, 181),
    ("resnet9", {"projection_shortcuts": 2}, "float", 1, 19984),
    ("resnet9", {"projection_shortcuts": 2}, "binary", 1, 826),
    ("fernet", {}, "float", 1, 1880),
    ("fernet", {}, "binary", 1, 64),
    # the natural one-projection ResNet9 (documented as 3.4 % / 2.6 % below the paper)
    ("resnet9", {}, "float", 1, 19312),
    ("resnet9", {}, "binary", 1, 805),
]


@pytest.mark.parametrize("name,options,precision,tentacles,paper_kb", TABLE_1)
def test_table_1_sizes(name, options, precision, tentacles, paper_kb):
    model = lt.build(name, precision=precision, tentacles=tentacles, **options)
    assert lt.paper_size_kb(model) == paper_kb


TABLE_2 = [
    ("nin", {}, 5, 645),
    ("fernet", {}, 3, 188),
    pytest.param("resnet9", {"projection_shortcuts": 2}, 14, 11465, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,options,tentacles,paper_kb", TABLE_2)
def test_table_2_tentaclenet_sizes_within_half_a_percent(name, options, tentacles, paper_kb):
    model = lt.build(name, tentacles=tentacles, **options)
    assert abs(lt.paper_size_kb(model) - paper_kb) / paper_kb <= 0.005


def test_size_counts_one_bit_per_binary_parameter_and_ignores_batchnorm():
    bnn = lt.build("fernet")
    fp = lt.build("fernet", precision="float")
    binary_params = sum(
        layer.count_params() for layer in bnn.layers if layer.name.startswith("t1_conv")
    )
    float_params = sum(
        layer.count_params()
        for layer in fp.layers
        if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense))
    )
    assert lt.paper_size_kb(fp, exact=True) == pytest.approx(float_params * 4 / 1024)
    first_last = float_params - binary_params
    assert lt.paper_size_kb(bnn, exact=True) == pytest.approx(
        (first_last * 32 + binary_params) / 8 / 1024
    )


def test_tentaclenet_grows_by_one_tentacle_per_tentacle():
    sizes = [lt.paper_size_kb(lt.build("fernet", tentacles=n), exact=True) for n in (2, 3, 4)]
    # head_dense grows by K*C float weights per tentacle, the rest by one binary tentacle
    assert sizes[2] - sizes[1] == pytest.approx(sizes[1] - sizes[0])


def test_larq_summary_memory_is_reported_next_to_it():
    model = lt.build("nin")
    assert lt.larq_memory_kb(model) > lt.paper_size_kb(model, exact=True)  # BN and 32-bit biases
