"""The optimizers of a recipe: Adam (the paper's), SGD, and Bop for the binary kernels.

`--optimizer=bop` trains a BNN the way Helwegen et al. (2019, "Latent weights do not
exist") propose: Larq's `Bop` flips a binary kernel's sign when the moving average of its
gradient (rate `gamma`) exceeds `threshold` and agrees in sign with the weight, and every
other weight (stem, head, BatchNorm) trains with Adam at the recipe's `learning_rate`.
Larq's `CaseOptimizer` routes each variable (Bop takes those `Bop.is_binary_variable`
marks: the kernels of our XNOR convs, whose quantizer has precision 1).

Larq's optimizers are Keras's legacy optimizers, and `CaseOptimizer` has no learning rate
of its own; `BopOptimizer` exposes its Adam's, so ReduceLROnPlateau (and the resumable
schedule of training/callbacks.py) lower Adam's rate and leave Bop alone, as the Bop
paper does. BackupAndRestore checkpoints both optimizers' state (CaseOptimizer tracks them).
"""

import larq as lq
import tensorflow as tf

# Larq's defaults (the Bop paper's CIFAR-10 values).
BOP_THRESHOLD = 1e-8
BOP_GAMMA = 1e-4


class BopOptimizer(lq.optimizers.CaseOptimizer):
    """Bop for the binary kernels, legacy Adam(`learning_rate`) for every other weight.

    `learning_rate` (and Keras's alias `lr`) is the Adam's, so LR schedules work on it.
    """

    def __init__(
        self,
        learning_rate: float,
        *,
        threshold: float = BOP_THRESHOLD,
        gamma: float = BOP_GAMMA,
        name: str = "bop_adam",
    ):
        super().__init__(
            (
                lq.optimizers.Bop.is_binary_variable,
                lq.optimizers.Bop(threshold=threshold, gamma=gamma),
            ),
            default_optimizer=tf.keras.optimizers.legacy.Adam(learning_rate),
            name=name,
        )

    @property
    def learning_rate(self):
        return self.default.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.default.learning_rate = value

    # Keras's ReduceLROnPlateau reads and writes `optimizer.lr`.
    lr = learning_rate


def make_optimizer(recipe) -> tf.keras.optimizers.Optimizer:
    """The optimizer a `Recipe` (or TrainConfig) names, at its `learning_rate`."""
    if recipe.optimizer == "sgd":
        return tf.keras.optimizers.SGD(recipe.learning_rate, momentum=0.9)
    if recipe.optimizer == "bop":
        return BopOptimizer(recipe.learning_rate)
    return tf.keras.optimizers.Adam(recipe.learning_rate)
