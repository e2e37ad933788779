"""Knowledge distillation from the FP32 teacher into a BNN or TentacleNet.

TentacleNet trains the FP32 model anyway, so it can teach the binary one for free
(Hinton et al., 2015; Real-to-Binary, Martinez et al., 2020). The student minimises

    (1 - α)·CE(y, student) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))

over each batch: CE on the labels, KL between the tempered class distributions of the
teacher and the student (T² keeps the soft targets' gradients at the scale of the
hard ones', Hinton §2). With `tentacles=True` the KL term is the mean over the head and
every tentacle alone, a tentacle's logits being its slice of the head (`head_dense`
with the other tentacles' logits zeroed, as `report.tentacle_accuracies` scores it).

Logits from probabilities: every model here ends in a softmax (the sparse-CE recipe), so
the logits are taken as log p. log softmax(z) = z - logsumexp(z) differs from z by one
constant per example, and softmax is shift-invariant, so softmax(log p / T) equals
softmax(z / T) exactly. Only a probability that underflows float32 (a logit gap over
~87) is clipped to the smallest normal float; its tempered weight is below e^(-87/T).

`DistillationModel` is the Keras pattern for it: a `tf.keras.Model` wrapping student and
teacher with its own `train_step`, trained by `model.fit` (so fit_model's callbacks and
BackupAndRestore work unchanged). The teacher is frozen and runs in inference mode on
the same augmented batch as the student, every step (nothing cached). Saving the
wrapper saves the student alone: a distilled run's best/last model is the plain model.
"""


import numpy as np
import tensorflow as tf

from larq_tentacle.core.layout import layout
from larq_tentacle.training.float_runs import load_float_model
from larq_tentacle.utils import validation

__all__ = [
    "DistillationModel",
    "load_teacher",
    "logits_from_probabilities",
    "soft_target_loss",
]

HARD_LOSS = "sparse_categorical_crossentropy"
_PARTS = ("ce_loss", "distill_loss")  # the unweighted terms, logged while training
_TINY = float(np.finfo(np.float32).tiny)


def logits_from_probabilities(probabilities: tf.Tensor) -> tf.Tensor:
    """log p: the logits up to a per-example constant (see the module docstring)."""
    return tf.math.log(tf.clip_by_value(probabilities, _TINY, 1.0))


def soft_target_loss(teacher_logits, student_logits, temperature: float) -> tf.Tensor:
    """Per example: T²·KL(softmax(teacher/T) ‖ softmax(student/T))."""
    teacher_log = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    student_log = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(teacher_log) * (teacher_log - student_log), axis=-1)
    return temperature**2 * kl


def load_teacher(workdir, *, input_shape, num_classes: int) -> tf.keras.Model:
    """The best model of a finished float run, checked to take this run's input and classes.

    Call it inside the strategy scope the student trains under.
    """
    return load_float_model(
        workdir, flag="--teacher", input_shape=input_shape, num_classes=num_classes
    )


class DistillationModel(tf.keras.Model):
    """Trains `student` against labels and a frozen `teacher`; predicts and saves as `student`.

    !!! example
        ```python
        distiller = DistillationModel(student=bnn, teacher=fp32, alpha=0.9, temperature=4)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        distiller.fit(train, validation_data=validation, epochs=10)
        distiller.save("bnn.h5")  # the student alone
        ```

    Logs: `loss` (the distillation objective), `ce_loss` and `distill_loss` (its two
    parts, unweighted) and the compiled metrics of the student; validation reports the
    student's own cross-entropy as `val_loss`, so best-model choice and the LR schedule
    compare with undistilled runs.

    # Arguments
        student: the model to train (ends in a softmax).
        teacher: the model to learn from (ends in a softmax; same input and classes); its
            weights are frozen (`teacher.trainable = False`).
        alpha: weight of the soft targets, in [0, 1] (0: plain cross-entropy training).
        temperature: T > 0 of the tempered softmax.
        tentacles: also distil into every tentacle alone (a TentacleNet with the head of
            Fig. 2-a and n >= 2 branched tentacles).
    """

    def __init__(self, student, teacher, *, alpha=0.9, temperature=4.0, tentacles=False, **kw):
        super().__init__(**kw)
        _check_models(student, teacher)
        self.student = student
        self.teacher = teacher
        teacher.trainable = False
        self.alpha = validation.positive_float("alpha", alpha, "pass 0 <= alpha <= 1", zero=True)
        if self.alpha > 1:
            raise ValueError(f"Expected `alpha` in [0, 1], got {alpha!r}. Fix: e.g. alpha=0.9.")
        self.temperature = validation.positive_float("temperature", temperature, "e.g. 4")
        self.tentacles = validation.boolean("tentacles", tentacles)
        # One forward pass that also yields the tentacles' logits (the student's own layers).
        self._tentacle_model, self._head_dense = _tentacle_outputs(student, self.tentacles)
        self._trackers = [tf.keras.metrics.Mean(name) for name in ("loss", *_PARTS)]

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Keras's compile; the hard-label loss is always the sparse cross-entropy."""
        if loss not in (None, HARD_LOSS):
            raise ValueError(
                f"DistillationModel computes its own loss ({HARD_LOSS} + soft targets), got "
                f"loss={loss!r}. Fix: compile without `loss`."
            )
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        compiled = self.compiled_metrics.metrics if self.compiled_metrics is not None else []
        return self._trackers + list(compiled)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def save(self, filepath, *args, **kwargs):
        """Save the student alone (the teacher is only a training aid)."""
        return self.student.save(filepath, *args, **kwargs)

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            probabilities, tentacle_logits = self._forward(x)
            # After the student, in inference mode: it never changes the teacher or the
            # random ops (dropout) of the student's graph.
            teacher_logits = logits_from_probabilities(self.teacher(x, training=False))
            hard = tf.keras.losses.sparse_categorical_crossentropy(y, probabilities)
            soft = self._soft_targets(teacher_logits, probabilities, tentacle_logits)
            per_example = (1.0 - self.alpha) * hard + self.alpha * soft
            loss = self._average(per_example, sample_weight) + self._regularization()
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        values = (loss, self._average(hard, sample_weight), self._average(soft, sample_weight))
        return self._results(values, y, probabilities, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        probabilities = self.student(x, training=False)
        hard = tf.keras.losses.sparse_categorical_crossentropy(y, probabilities)
        loss = self._average(hard, sample_weight) + self._regularization()
        results = self._results((loss,), y, probabilities, sample_weight)
        return {name: value for name, value in results.items() if name not in _PARTS}

    def _forward(self, x):
        """(the student's probabilities, each tentacle's logits or [])."""
        if self._tentacle_model is None:
            return self.student(x, training=True), []
        probabilities, *tentacle_logits = self._tentacle_model(x, training=True)
        return probabilities, tentacle_logits

    def _soft_targets(self, teacher_logits, probabilities, tentacle_logits):
        """Per example: T²·KL on the head, or its mean over the head and each tentacle."""
        student_logits = logits_from_probabilities(probabilities)
        losses = [soft_target_loss(teacher_logits, student_logits, self.temperature)]
        for index in range(len(tentacle_logits)):
            alone = [
                logits if j == index else tf.zeros_like(logits)
                for j, logits in enumerate(tentacle_logits)
            ]
            scores = self._head_dense(tf.concat(alone, axis=-1))
            losses.append(soft_target_loss(teacher_logits, scores, self.temperature))
        return tf.add_n(losses) / len(losses)

    def _average(self, per_example, sample_weight):
        # Keras's reduction: sum over the batch / global batch size (replicas included).
        return tf.nn.compute_average_loss(per_example, sample_weight=sample_weight)

    def _regularization(self):
        if not self.student.losses:
            return 0.0
        return tf.nn.scale_regularization_loss(tf.add_n(self.student.losses))

    def _results(self, values, y, probabilities, sample_weight) -> dict:
        # Trackers hold per-replica averages; Keras's own loss tracker undoes the scaling too.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for tracker, value in zip(self._trackers, values):
            tracker.update_state(value * replicas)
        self.compiled_metrics.update_state(y, probabilities, sample_weight)
        return {metric.name: metric.result() for metric in self.metrics}


def _check_models(student, teacher) -> None:
    for role, model in (("student", student), ("teacher", teacher)):
        if not isinstance(model, tf.keras.Model):
            raise TypeError(f"`{role}` must be a tf.keras.Model, got {type(model).__name__}.")
    found = (tuple(teacher.input_shape[1:]), teacher.output_shape[-1])
    expected = (tuple(student.input_shape[1:]), student.output_shape[-1])
    if found != expected:
        raise ValueError(
            f"The teacher takes input {found[0]} with {found[1]} classes, the student input "
            f"{expected[0]} with {expected[1]} classes. Fix: train both on the same data."
        )


def _tentacle_outputs(student, tentacles: bool):
    """(a model of [probabilities, *each tentacle's logits], head_dense), or (None, None)."""
    if not tentacles:
        return None, None
    try:
        structure = layout(student)
        concat, dense = student.get_layer("head_concat"), student.get_layer("head_dense")
    except ValueError:
        structure = concat = dense = None
    linear = dense is not None and tf.keras.activations.serialize(dense.activation) == "linear"
    if structure is None or structure.head_variant != "a" or not linear:
        raise ValueError(
            f"distill_tentacles needs each tentacle's own logits (a TentacleNet with n >= 2 "
            f"branched tentacles and the head of Fig. 2-a); {student.name!r} has none. "
            "Fix: drop --distill_tentacles, or use --fused=false and --tentacles >= 2."
        )
    outputs = tf.keras.Model(student.inputs, [student.output, *concat.input])
    return outputs, dense
