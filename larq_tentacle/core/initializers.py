"""Pseudo-Hadamard initialization of binary kernels (TentacleNet §3.2).

Orthogonal initial weights train better (Saxe et al.); in the binary domain the
orthogonal ±1 matrices are Hadamard matrices. A Sylvester matrix only exists for
orders 2^k, so a kernel with `fan_in` inputs and `units` filters takes a Sylvester
matrix of order 2^ceil(log2(fan_in)) whose columns are permuted and cut to
`fan_in`, and whose rows are randomly *removed* (units < order) or *replicated*
(units > order). Each tentacle passes its own seed, so tentacles start from
different, individually near-orthogonal kernels.
"""

import numpy as np
import tensorflow as tf

from larq_tentacle.utils.validation import positive_int


def derive_seed(*parts: int) -> int:
    """A seed in [0, 2**31) derived from integers, e.g. (base seed, tentacle, layer position).

    Different parts give unrelated seeds (numpy's SeedSequence mixing), so tentacles
    and ensemble members built from one base seed start from different weights.
    """
    state = np.random.SeedSequence([int(part) for part in parts]).generate_state(1)[0]
    return int(state >> 1)


def sylvester_hadamard(order: int) -> np.ndarray:
    """The ±1 Hadamard matrix of `order` (a power of two) by Sylvester's construction."""
    order = positive_int("order", order)
    if order & (order - 1):
        raise ValueError(f"Sylvester Hadamard matrices exist for powers of two, got order={order}.")
    matrix = np.ones((1, 1), dtype=np.int8)
    while matrix.shape[0] < order:
        matrix = np.block([[matrix, matrix], [matrix, -matrix]])
    return matrix


def pseudo_hadamard(fan_in: int, units: int, seed: int) -> np.ndarray:
    """A (fan_in, units) ±1 matrix whose columns (the filters) are near-orthogonal."""
    rng = np.random.default_rng(seed)
    order = 1 << max(0, int(np.ceil(np.log2(max(fan_in, 1)))))
    inputs = rng.permutation(order)[:fan_in]
    if units <= order:
        filters = rng.choice(order, size=units, replace=False)
    else:
        extra = rng.choice(order, size=units - order, replace=True)
        filters = rng.permutation(np.concatenate([np.arange(order), extra]))
    return _sylvester_entries(inputs, filters)


def _sylvester_entries(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """H[rows][:, columns] of the Sylvester matrix without building it.

    H[i, j] = (-1)^popcount(i & j).

    The full matrix of a 3x3x512 kernel would have 8192^2 entries; this needs only
    the selected ones.
    """
    shared = np.bitwise_and.outer(rows.astype(np.int64), columns.astype(np.int64))
    parity = np.zeros(shared.shape, dtype=np.int64)
    while np.any(shared):
        parity ^= shared & 1
        shared >>= 1
    return (1 - 2 * parity).astype(np.int8)


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class PseudoHadamard(tf.keras.initializers.Initializer):
    """Initialize a kernel with `scale` × a pseudo-Hadamard ±1 matrix.

    The last kernel axis is the filter axis (Conv2D: (kh, kw, cin, cout); Dense:
    (cin, cout)); every other axis is flattened into the fan-in.

    # Arguments
        seed: integer; different seeds give different row/column selections.
        scale: magnitude of the latent weights. Binarization keeps only the sign,
            the magnitude decides how quickly a latent weight can change sign.
    """

    def __init__(self, seed: int = 0, scale: float = 0.05):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"Expected `seed` to be an integer >= 0, got {seed!r}.")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
            raise ValueError(f"Expected `scale` to be a positive number, got {scale!r}.")
        self.seed = int(seed)
        self.scale = float(scale)

    def __call__(self, shape, dtype=None, **kwargs):
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise ValueError(f"PseudoHadamard needs a kernel of rank >= 2, got shape {shape}.")
        fan_in, units = int(np.prod(shape[:-1])), shape[-1]
        matrix = pseudo_hadamard(fan_in, units, self.seed).astype(np.float32) * self.scale
        return tf.constant(matrix.reshape(shape), dtype=dtype or tf.float32)

    def get_config(self):
        return {"seed": self.seed, "scale": self.scale}


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class TentacleAverage(tf.keras.initializers.Initializer):
    """A (n·C, C) kernel that averages n concatenated C-logit vectors.

    Used for the Fig. 2-a head: the Dense over the concatenated logits starts as the
    ensemble's mean vote, and training learns the mix from there.
    """

    def __init__(self, tentacles: int = 1):
        if (
            isinstance(tentacles, bool)
            or not isinstance(tentacles, (int, np.integer))
            or tentacles < 1
        ):
            raise ValueError(f"Expected `tentacles` to be an integer >= 1, got {tentacles!r}.")
        self.tentacles = int(tentacles)

    def __call__(self, shape, dtype=None, **kwargs):
        inputs, classes = (int(d) for d in shape)
        if inputs != self.tentacles * classes:
            raise ValueError(
                f"TentacleAverage({self.tentacles}) needs a kernel of shape "
                f"({self.tentacles}·C, C), got {shape}."
            )
        kernel = np.tile(np.eye(classes, dtype=np.float32) / self.tentacles, (self.tentacles, 1))
        return tf.constant(kernel, dtype=dtype or tf.float32)

    def get_config(self):
        return {"tentacles": self.tentacles}
