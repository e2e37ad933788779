"""Statistics: intervals and paired tests against textbook values, and the sweep's tables."""

import csv
import math

import pytest

from larq_tentacle import experiments
from larq_tentacle.experiments import confidence, plan, stats, tables
from larq_tentacle.utils import atomic


def test_student_t_quantiles_match_the_table():
    # Any t table: two-sided 95% critical values.
    for df, value in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)]:
        assert confidence.student_t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    assert confidence.student_t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)
    assert confidence.student_t_quantile(0.5, 3) == 0.0
    # One degree of freedom is the Cauchy distribution: the quantile is tan(pi (p - 1/2)).
    assert confidence.student_t_quantile(0.9, 1) == pytest.approx(math.tan(0.4 * math.pi))


def test_regularized_beta_against_closed_forms():
    # I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
    assert confidence.regularized_beta(0.3, 2.5, 1) == pytest.approx(0.3**2.5, rel=1e-12)
    assert confidence.regularized_beta(0.3, 1, 4) == pytest.approx(1 - 0.7**4, rel=1e-12)
    assert confidence.regularized_beta(0.5, 7, 7) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        confidence.regularized_beta(1.5, 1, 1)


def test_wilson_interval_matches_hand_computed_and_published_values():
    # 5 of 10 by hand: centre 0.5, half-width z/(1+z²/n) * sqrt(p(1-p)/n + z²/4n²).
    z = 1.959963984540054
    half = z / (1 + z * z / 10) * math.sqrt(0.025 + z * z / 400)
    low, high = confidence.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    # Newcombe (1998), Stat. Med. 17:857, Table I: 81/263 -> 0.2553 to 0.3662.
    low, high = confidence.wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert confidence.wilson_interval(0, 20)[0] == 0.0
    assert confidence.wilson_interval(20, 20)[1] == 1.0
    for bad in [(11, 10), (3, 0), (2.5, 10)]:
        with pytest.raises(ValueError, match="Fix: pass counts"):
            confidence.wilson_interval(*bad)


def test_clopper_pearson_interval_matches_exact_values():
    # 0 of n: the upper bound solves (1 - p)^n = 0.025; n of n mirrors it.
    assert confidence.clopper_pearson_interval(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1))
    assert confidence.clopper_pearson_interval(10, 10) == (pytest.approx(0.025**0.1), 1.0)
    # R: binom.test(5, 10)$conf.int = 0.1870860 0.8129140.
    low, high = confidence.clopper_pearson_interval(5, 10)
    assert (round(low, 6), round(high, 6)) == (0.187086, 0.812914)
    # Exact is wider than Wilson (it is conservative).
    wilson = confidence.wilson_interval(81, 263)
    exact = confidence.clopper_pearson_interval(81, 263)
    assert exact[0] < wilson[0] and exact[1] > wilson[1]
    assert (round(exact[0], 4), round(exact[1], 4)) == (0.2527, 0.3676)


def test_mcnemar_exact_is_a_binomial_test_on_the_discordant_images():
    # 1 image only A gets right, 9 only B: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024.
    a = [1] * 1 + [0] * 9 + [1] * 30 + [0] * 5
    b = [0] * 1 + [1] * 9 + [1] * 30 + [0] * 5
    result = confidence.mcnemar_exact(a, b)
    assert (result["first_only"], result["second_only"], result["images"]) == (1, 9, 45)
    assert result["p_value"] == pytest.approx(22 / 1024)
    # 2 vs 8: 2 * (1 + 10 + 45) / 1024; symmetric in the two models.
    a, b = [1, 1] + [0] * 8, [0, 0] + [1] * 8
    assert confidence.mcnemar_exact(a, b)["p_value"] == pytest.approx(112 / 1024)
    assert confidence.mcnemar_exact(b, a)["p_value"] == pytest.approx(112 / 1024)
    # Equal discordance, or none at all: no evidence (p = 1, capped).
    assert confidence.mcnemar_exact([1, 0, 1], [0, 1, 1])["p_value"] == 1.0
    assert confidence.mcnemar_exact([1, 1], [1, 1])["p_value"] == 1.0
    # Large test sets stay exact (no float overflow in 2^n).
    big = confidence.mcnemar_exact([1] * 600 + [0] * 500, [0] * 600 + [1] * 500)
    assert 0.0 < big["p_value"] < 0.01
    with pytest.raises(ValueError, match="same test images"):
        confidence.mcnemar_exact([1, 0], [1, 0, 1])


def test_mean_interval_and_paired_difference_over_seeds():
    result = confidence.mean_interval([1, 2, 3, 4, 5])
    # sd = sqrt(2.5), t(0.975, 4) = 2.776445: half-width 2.776445 * 1.5811 / sqrt(5)
    assert result["mean"] == 3.0 and result["half_width"] == pytest.approx(1.963243, abs=1e-6)
    assert (result["low"], result["high"]) == (pytest.approx(1.036757, abs=1e-6),
                                               pytest.approx(4.963243, abs=1e-6))
    one = confidence.mean_interval([97.5])
    assert one["mean"] == 97.5 and one["half_width"] is None
    paired = confidence.paired_difference([96.0, 97.0, 95.0, 96.5], [95.0, 97.0, 95.5, 95.5])
    # differences 1, 0, -0.5, 1: mean 0.375, sd 0.75, t(0.975, 3) = 3.182446
    assert paired["mean"] == pytest.approx(0.375)
    assert paired["half_width"] == pytest.approx(3.182446 * 0.75 / 2, abs=1e-6)
    assert (paired["wins"], paired["ties"], paired["losses"]) == (2, 1, 1)
    with pytest.raises(ValueError, match="same seeds"):
        confidence.paired_difference([1, 2], [1])


def _point(method, n, seed, accuracy, kb):
    return dict(model="nin", dataset="digits", method=method, n=n, seed=seed,
                point=plan.point_id(method, n, seed), test_accuracy=accuracy, paper_kb=kb,
                paper_kb_exact=kb, wall_time_s=1.0, epochs_completed=1,
                member_accuracies=None, input_shape=[8, 8, 1])


# TentacleNet n=2 (97 kB) vs bagging N=2 (98 kB) over three seeds; n=8 has no BENN of its size.
POINTS = [_point("fp32", 1, s, a, 1369) for s, a in enumerate([0.98, 0.99, 0.97])] + [
    _point("tentaclenet", 2, s, a, 97) for s, a in enumerate([0.96, 0.95, 0.97])
] + [_point("bagging", 2, s, a, 98) for s, a in enumerate([0.94, 0.95, 0.95])] + [
    _point("tentaclenet", 8, s, a, 382) for s, a in enumerate([0.97, 0.97, 0.97])
]


def test_paired_at_equal_memory_pairs_seeds_of_the_same_size_only():
    rows = stats.rows_with_delta(POINTS, stats.fp32_reference(POINTS))
    paired = stats.paired_at_equal_memory(rows)
    assert [(p["n"], p["method"], p["benn_n"]) for p in paired] == [(2, "bagging", 2)]
    (pair,) = paired
    # differences 2, 0, 2 pp
    assert pair["seeds"] == 3 and pair["diff_pp_mean"] == pytest.approx(4 / 3)
    assert (pair["wins"], pair["ties"], pair["losses"]) == (2, 1, 0)
    half = confidence.student_t_quantile(0.975, 2) * math.sqrt(4 / 3) / math.sqrt(3)
    assert pair["diff_pp_ci95_high"] == pytest.approx(4 / 3 + half)


def test_sweep_tables_give_95_percent_intervals_and_paired_differences(tmp_path):
    for point in POINTS:
        atomic.write_json(tmp_path / "points" / f"{point['point']}.json", point)
    result = experiments.render(tmp_path)
    with open(result["paths"]["summary.csv"]) as file:
        summary = {(r["method"], r["n"]): r for r in csv.DictReader(file)}
    tn2 = summary[("tentaclenet", "2")]
    # 96 ± t(0.975, 2) * 1 / sqrt(3) = 96 ± 2.48
    assert float(tn2["accuracy_ci95_low"]) == pytest.approx(96 - 2.4841, abs=1e-3)
    assert float(tn2["accuracy_ci95_high"]) == pytest.approx(96 + 2.4841, abs=1e-3)
    table = open(result["paths"]["table2.md"]).read()
    assert "Δ vs FP32 (pp, mean ± 95% CI)" in table and "accuracy % (mean ± 95% CI)" in table
    assert "| 2 | 97 | 96.00 ± 2.48 |" in table
    assert "## Paired by seed at equal memory" in table
    assert "| 2 | 97 | BENN bagging N=2 (98 kB) | 3 | +1.33 | [-1.54, +4.20] | 2 / 1 / 0 |" in table
    assert tables.paired_markdown([]).startswith("No BENN point")


def test_fp32_learning_rates_chosen_on_validation_are_listed_in_table2(tmp_path):
    searched = dict(POINTS[0], learning_rate=3e-3, lr_search=dict(
        learning_rate=3e-3, candidates=[dict(learning_rate=1e-3, val_accuracy=0.95),
                                        dict(learning_rate=3e-3, val_accuracy=0.97)]))
    for point in [searched] + POINTS[1:]:
        atomic.write_json(tmp_path / "points" / f"{point['point']}.json", point)
    table = open(experiments.render(tmp_path)["paths"]["table2.md"]).read()
    assert "- seed 0: 0.003 (of 0.001: 95.00, 0.003: 97.00)" in table


def test_the_sweep_grid_applies_to_the_fp32_points_only():
    config = experiments.SweepConfig(model="nin", dataset="digits", lr_grid="1e-2,1e-3",
                                     seeds=[0]).resolved()
    assert config.lr_grid == [1e-3, 1e-2]
    assert config.train_config(precision="float", seed=0).resolved().lr_grid == [1e-3, 1e-2]
    assert config.train_config(tentacles=3, seed=0).resolved().lr_grid is None
