"""The vote that combines a BENN ensemble's members, as a Keras layer and in NumPy.

It lives in the model core (not with the BENN training in `experiments`) because
`lt.load_model` must know the layer to reload a saved ensemble.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from larq_tentacle.utils import validation

# "weighted" is the boosting vote; bagging uses "average" (softmax) or "majority".
VOTES = ("average", "majority", "weighted")


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class EnsembleVote(tf.keras.layers.Layer):
    """Combine the members' class probabilities into the ensemble's.

    # Arguments
        vote: "average" (mean of the softmax outputs), "majority" (share of the
            members voting for each class) or "weighted" (SAMME: each member votes
            for its argmax with weight α_m; the output is normalized by Σ α).
        member_weights: α_m per member for "weighted" (ignored otherwise).

    Ties in a vote go to the lowest class index (argmax), in Keras and TFLite alike.
    """

    def __init__(
        self, vote: str = "average", member_weights: Optional[Sequence[float]] = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.vote = validation.choice("vote", vote, VOTES)
        if self.vote == "weighted":
            if member_weights is None or len(member_weights) == 0:
                raise ValueError(
                    "vote='weighted' needs member_weights (one α per member). Fix: pass the "
                    "SAMME weights, e.g. member_weights=result.alphas."
                )
            if any(not np.isfinite(w) or w < 0 for w in member_weights) or sum(member_weights) <= 0:
                raise ValueError(
                    "member_weights must be finite, >= 0 and not all 0, "
                    f"got {list(member_weights)!r}."
                )
        self.member_weights = None if member_weights is None else [float(w) for w in member_weights]

    def call(self, inputs):
        members = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if self.vote == "weighted" and len(members) != len(self.member_weights):
            raise ValueError(
                f"EnsembleVote has {len(self.member_weights)} member_weights but got "
                f"{len(members)} members."
            )
        stacked = tf.stack(members, axis=1)  # (batch, members, classes)
        if self.vote == "average":
            return tf.reduce_mean(stacked, axis=1)
        votes = tf.one_hot(
            tf.argmax(stacked, axis=-1), depth=stacked.shape[-1], dtype=stacked.dtype
        )
        if self.vote == "majority":
            return tf.reduce_mean(votes, axis=1)
        weights = np.asarray(self.member_weights, dtype=np.float32)
        weights = tf.constant(weights / weights.sum(), dtype=stacked.dtype)
        return tf.reduce_sum(votes * weights[tf.newaxis, :, tf.newaxis], axis=1)

    def compute_output_shape(self, input_shape):
        first = (
            input_shape[0]
            if isinstance(input_shape, (list, tuple))
            and isinstance(input_shape[0], (list, tuple, tf.TensorShape))
            else input_shape
        )
        return tf.TensorShape(first)

    def get_config(self):
        return {**super().get_config(), "vote": self.vote, "member_weights": self.member_weights}


def combine(
    probabilities, *, vote: str, member_weights: Optional[Sequence[float]] = None
) -> np.ndarray:
    """NumPy twin of `EnsembleVote`: (members, batch, classes) probabilities -> (batch, classes).

    Lets a sweep score every prefix of a trained pool without rebuilding graphs.
    """
    vote = validation.choice("vote", vote, VOTES)
    stacked = np.asarray(probabilities, dtype=np.float64)
    if stacked.ndim != 3:
        raise ValueError(
            f"Expected probabilities shaped (members, batch, classes), got {stacked.shape}."
        )
    if vote == "average":
        return stacked.mean(axis=0)
    votes = np.eye(stacked.shape[-1])[stacked.argmax(axis=-1)]  # (members, batch, classes)
    if vote == "majority":
        return votes.mean(axis=0)
    weights = np.asarray(member_weights, dtype=np.float64)
    if weights.shape != (stacked.shape[0],):
        raise ValueError(f"Expected {stacked.shape[0]} member_weights, got {weights.shape}.")
    return np.tensordot(weights / weights.sum(), votes, axes=1)
