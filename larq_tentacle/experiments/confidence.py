"""How far a number can be trusted: confidence intervals and paired tests, without SciPy.

- `wilson_interval`, `clopper_pearson_interval`: one model's test accuracy, a binomial
  proportion (k of n test images right).
- `mcnemar_exact`: two models on the same test images; only the images exactly one of
  them gets right (the discordant pairs) say which is better; under "equally good" each
  such image is a fair coin, so the p-value is a two-sided binomial test on them.
- `mean_interval`: mean ± Student-t interval of a quantity over seeds.
- `paired_difference`: two methods over the same seeds: the mean difference, its t
  interval and how many seeds each wins.

SciPy is not a dependency; the two distributions needed (Student t, beta) come from the
regularized incomplete beta function, computed by its continued fraction and inverted
by bisection to far below the digits any table shows.
"""

import math
from statistics import NormalDist
from typing import Dict, Sequence, Tuple

import numpy as np

_EPSILON = 1e-15
_BISECTIONS = 200


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the CDF of a Beta(a, b) variable at x (Numerical Recipes' betacf)."""
    if not 0.0 <= x <= 1.0 or a <= 0 or b <= 0:
        raise ValueError(f"regularized_beta needs 0 <= x <= 1 and a, b > 0, got {x}, {a}, {b}.")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); else use symmetry.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < _EPSILON:
            break
    return result


def beta_quantile(p: float, a: float, b: float) -> float:
    """The x with I_x(a, b) = p (bisection: I_x is increasing in x)."""
    _check_probability("p", p, closed=True)
    low, high = 0.0, 1.0
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        if regularized_beta(middle, a, b) < p:
            low = middle
        else:
            high = middle
        if high - low < _EPSILON:
            break
    return 0.5 * (low + high)


def student_t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (e.g. 0.975, 4 -> 2.776)."""
    _check_probability("p", p)
    if df <= 0:
        raise ValueError(f"Student's t needs df > 0, got {df}. Fix: use at least two values.")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    # P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2), solved for t.
    x = beta_quantile(2.0 * (1.0 - p), df / 2.0, 0.5)
    return math.sqrt(df * (1.0 - x) / x)


def wilson_interval(
    successes: int, trials: int, *, confidence: float = 0.95
) -> Tuple[float, float]:
    """Wilson's score interval of a proportion (k right of n): good even near 0 or 1."""
    _check_counts(successes, trials)
    z = NormalDist().inv_cdf(0.5 + _confidence(confidence) / 2.0)
    share = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (share + z * z / (2.0 * trials)) / denominator
    half = z / denominator * math.sqrt(share * (1.0 - share) / trials + z * z / (4.0 * trials**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_interval(
    successes: int, trials: int, *, confidence: float = 0.95
) -> Tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a proportion: beta quantiles, conservative."""
    _check_counts(successes, trials)
    tail = (1.0 - _confidence(confidence)) / 2.0
    low = 0.0 if successes == 0 else beta_quantile(tail, successes, trials - successes + 1)
    high = 1.0 if successes == trials else beta_quantile(
        1.0 - tail, successes + 1, trials - successes
    )
    return low, high


def mcnemar_exact(first_correct, second_correct) -> Dict[str, float]:
    """McNemar's exact test of two models' per-image correctness on the same test images.

    # Returns
        `first_only` (images only the first model gets right), `second_only`, `images`
        and `p_value`: two-sided, 2 * P(Binomial(b + c, 1/2) <= min(b, c)), capped at 1
        (1 when no image is discordant).
    """
    first = np.asarray(first_correct, dtype=bool).ravel()
    second = np.asarray(second_correct, dtype=bool).ravel()
    if first.shape != second.shape or first.size == 0:
        raise ValueError(
            f"McNemar's test pairs the two models image by image, got {first.size} and "
            f"{second.size} results. Fix: score both models on the same test images."
        )
    first_only = int(np.sum(first & ~second))
    second_only = int(np.sum(second & ~first))
    discordant = first_only + second_only
    tail = sum(math.comb(discordant, k) for k in range(min(first_only, second_only) + 1))
    # Exact integers until the one division, so large test sets lose nothing.
    p_value = min(1.0, 2 * tail / 2**discordant)
    return dict(first_only=first_only, second_only=second_only, images=int(first.size),
                p_value=p_value)


def mean_interval(values: Sequence[float], *, confidence: float = 0.95) -> Dict[str, float]:
    """Mean, sample std and the Student-t interval of the mean (None for one value)."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("mean_interval got no values. Fix: pass at least one (e.g. one a seed).")
    mean = float(data.mean())
    if data.size == 1:
        return dict(n=1, mean=mean, std=0.0, half_width=None, low=None, high=None)
    std = float(data.std(ddof=1))
    half = student_t_quantile(0.5 + _confidence(confidence) / 2.0, data.size - 1) * std / math.sqrt(
        data.size
    )
    return dict(n=int(data.size), mean=mean, std=std, half_width=half, low=mean - half,
                high=mean + half)


def paired_difference(
    first: Sequence[float], second: Sequence[float], *, confidence: float = 0.95
) -> Dict[str, float]:
    """first - second over paired values (e.g. the same seeds): mean, t interval, wins.

    `wins` counts pairs where first > second, `losses` where it is below, `ties` equal.
    """
    a, b = np.asarray(list(first), dtype=float), np.asarray(list(second), dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"paired_difference needs the same number of paired values, got {a.size} and "
            f"{b.size}. Fix: compare the two methods on the same seeds."
        )
    differences = a - b
    result = mean_interval(differences, confidence=confidence)
    result.update(wins=int(np.sum(differences > 0)), ties=int(np.sum(differences == 0)),
                  losses=int(np.sum(differences < 0)))
    return result


def _confidence(confidence: float) -> float:
    _check_probability("confidence", confidence)
    return float(confidence)


def _check_probability(name: str, value: float, *, closed: bool = False) -> None:
    inside = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not inside:
        raise ValueError(
            f"Expected `{name}` to be a probability in {'[0, 1]' if closed else '(0, 1)'}, got "
            f"{value!r}. Fix: e.g. 0.95."
        )


def _check_counts(successes: int, trials: int) -> None:
    if int(trials) != trials or trials < 1 or int(successes) != successes or not (
        0 <= successes <= trials
    ):
        raise ValueError(
            f"Expected 0 <= successes <= trials with trials >= 1 (whole numbers), got "
            f"successes={successes!r}, trials={trials!r}. Fix: pass counts of test images."
        )
