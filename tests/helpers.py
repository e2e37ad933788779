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
