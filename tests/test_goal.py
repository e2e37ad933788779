"""Issue 13's goal judged from summary and paired rows (experiments/goal.py)."""

import pytest

from larq_tentacle.experiments import goal


def _tentaclenet(n, delta, recipe="best", seeds=5):
    return dict(method="tentaclenet", recipe=recipe, n=n, delta_pp_mean=delta, seeds=seeds)


def _paired(n, wins, seeds=5, recipe="best", method="bagging", diff=0.3):
    return dict(recipe=recipe, n=n, method=method, benn_n=n, seeds=seeds, wins=wins,
                diff_pp_mean=diff)


def test_reached_when_one_small_n_is_close_and_bagging_loses_on_4_of_5_seeds():
    summary = [_tentaclenet(1, -2.0), _tentaclenet(3, -0.4), _tentaclenet(5, 0.5)]
    verdict = goal.judge(summary, [_paired(1, 4), _paired(3, 5)], recipe="best")
    assert verdict["passed"]
    assert verdict["close"]["n"] == 3 and verdict["close"]["short_by_pp"] == 0


def test_n_above_three_does_not_count_and_the_shortfall_is_stated():
    summary = [_tentaclenet(2, -1.25), _tentaclenet(5, 0.5)]
    verdict = goal.judge(summary, [_paired(2, 5)], recipe="best")
    assert not verdict["passed"] and verdict["above_bagging"]["passed"]
    assert verdict["close"]["n"] == 2
    assert verdict["close"]["short_by_pp"] == pytest.approx(0.75)
    assert "short by 0.75 pp" in goal.goal_markdown([verdict])


def test_three_wins_of_five_misses_the_bagging_part_at_that_n():
    summary = [_tentaclenet(1, 0.0)]
    paired = [_paired(1, 5), _paired(2, 3), _paired(2, 0, method="boosting"),
              _paired(2, 0, recipe="paper")]
    verdict = goal.judge(summary, paired, recipe="best")
    assert [row["n"] for row in verdict["above_bagging"]["rows"]] == [1, 2]
    assert not verdict["above_bagging"]["passed"] and not verdict["passed"]
    assert "missed at n=2" in goal.goal_markdown([verdict])


def test_three_seeds_need_three_wins():
    verdict = goal.judge([_tentaclenet(1, 0.0, seeds=3)], [_paired(1, 2, seeds=3)],
                         recipe="best")
    assert verdict["above_bagging"]["rows"][0]["needed"] == 3
    assert not verdict["passed"]


def test_no_rows_of_the_recipe_no_verdict_and_no_bagging_is_not_a_pass():
    assert goal.judge([_tentaclenet(1, 0.0, recipe="paper")], [], recipe="best") is None
    verdict = goal.judge([_tentaclenet(1, 0.0)], [], recipe="best")
    assert verdict["close"]["passed"] and not verdict["passed"]
    assert "No bagging ensemble" in goal.goal_markdown([verdict])
