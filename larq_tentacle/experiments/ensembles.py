"""BENN baselines (Zhu et al., CVPR 2019): bagging and boosting of independent BNNs.

TentacleNet's claim is measured against these. A BENN of N members is N whole
BNNs, each with its own float first and last layer, so its paper size is N times
one BNN (Table 2: NiN bagging 12 -> 2167 kB, boosting 8 -> 1445 kB).

* **bagging**: member k is trained on its own sample of the training set, either
  a bootstrap sample (drawn with replacement, the usual bagging) or the k-th of N
  random disjoint parts (what the TentacleNet paper describes, §2.3); the
  prediction is the averaged softmax or the majority vote.
* **boosting**: multi-class AdaBoost (SAMME, Zhu et al. 2009). Member m is trained
  with sample weights w; its weighted training error err_m gives it the vote
  α_m = log((1 - err_m) / err_m) + log(K - 1), and the weights of the samples it
  gets wrong are multiplied by exp(α_m) for the next member. The prediction is
  argmax_k Σ_m α_m·1[h_m(x) = k].

An ensemble is one functional Keras model: the members are nested models named
`member1..memberN` and an `EnsembleVote` layer combines them. So it saves to one
`.h5`, reloads with `lt.load_model`, counts with `lt.paper_size_kb` (every
member's layers are counted) and converts to one `.tflite` graph (members + vote).

!!! example
    ```python
    from larq_tentacle.experiments import ensembles
    builder = ensembles.member_builder("nin", num_classes=10, input_shape=(32, 32, 3))
    fit = ensembles.keras_fit(epochs=10, batch_size=128)
    result = ensembles.train_boosting(builder, x, y, members=8, fit=fit)
    result.model.predict(x_test)           # weighted vote of the 8 BNNs
    ensembles.save(result.model, "benn.h5")
    ```
"""

import dataclasses
import math
import os
from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from larq_tentacle.core.ensemble_vote import VOTES, EnsembleVote, combine  # noqa: F401
from larq_tentacle.core.initializers import derive_seed
from larq_tentacle.core.size import displayed_kb, paper_size_kb
from larq_tentacle.training.loop import make_optimizer
from larq_tentacle.training.recipe import Recipe
from larq_tentacle.utils import atomic, validation
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.seeding import seed_everything

METHODS = ("bagging", "boosting")
SAMPLINGS = ("bootstrap", "partition")
BAGGING_VOTES = ("average", "majority")


def assemble(
    members: Sequence[tf.keras.Model],
    *,
    vote: str = "average",
    member_weights: Optional[Sequence[float]] = None,
    name: str = "benn",
) -> tf.keras.Model:
    """One functional model: every member reads the same input, `EnsembleVote` combines them.

    Members keep their own weights (they are shared with the models passed in).
    """
    if not members:
        raise ValueError("assemble needs at least one member model.")
    shapes = {tuple(m.input_shape[1:]) for m in members}
    classes = {m.output_shape[-1] for m in members}
    if len(shapes) != 1 or len(classes) != 1:
        raise ValueError(
            f"All members must share one input shape and one number of classes, got input "
            f"shapes {sorted(shapes)} and classes {sorted(classes)}."
        )
    inputs = tf.keras.Input(shape=shapes.pop(), name="image")
    outputs = []
    for index, member in enumerate(members, start=1):
        # A new functional wrapper renames the member without touching its layers,
        # so two members built from the same registry name do not collide.
        wrapped = tf.keras.Model(member.inputs, member.outputs, name=f"member{index}")
        outputs.append(wrapped(inputs))
    vote_layer = EnsembleVote(vote=vote, member_weights=member_weights, name="vote")
    votes = vote_layer(outputs if len(outputs) > 1 else outputs[0])
    return tf.keras.Model(inputs, votes, name=name)


def members_of(model: tf.keras.Model) -> List[tf.keras.Model]:
    """The member models of an ensemble built by `assemble` (also after a reload)."""
    members = [layer for layer in model.layers if isinstance(layer, tf.keras.Model)]
    if not members or not any(isinstance(layer, EnsembleVote) for layer in model.layers):
        raise ValueError(
            f"{model.name!r} is not a BENN ensemble (no member models + EnsembleVote layer). "
            "Fix: build it with ensembles.assemble / train_bagging / train_boosting."
        )
    return sorted(members, key=lambda m: int(m.name.replace("member", "") or 0))


def describe(model: tf.keras.Model) -> dict:
    """Method, vote, member count, α and paper size of an ensemble (for reports)."""
    members = members_of(model)
    vote = next(layer for layer in model.layers if isinstance(layer, EnsembleVote))
    return dict(
        method="boosting" if vote.vote == "weighted" else "bagging",
        vote=vote.vote,
        members=len(members),
        member_weights=vote.member_weights,
        paper_size_kb=paper_size_kb(model),
        member_paper_size_kb=paper_size_kb(members[0], exact=True),
    )


def benn_size_kb(bnn: tf.keras.Model, members: int, *, exact: bool = False):
    """The paper's size of a BENN of `members` copies of `bnn`: N × one BNN, ceil of the total."""
    members = validation.positive_int("members", members)
    kib = members * paper_size_kb(bnn, exact=True)
    return kib if exact else displayed_kb(kib)


def save(model: tf.keras.Model, path) -> None:
    """Save an ensemble as one file, atomically (.h5 or .keras)."""
    members_of(model)
    with atomic.atomic_path(path) as temporary:
        model.save(temporary)


def load(path, *, compile: bool = False) -> tf.keras.Model:
    """Load an ensemble saved with `save` (this module registers `EnsembleVote`)."""
    from larq_tentacle.core.serialization import load_model

    return load_model(path, compile=compile)


# ---------------------------------------------------------------------------
# Training


@dataclasses.dataclass
class BennResult:
    """A trained ensemble with what its training decided.

    `model` is the whole ensemble (one Keras model); `members` its members in
    order. For boosting, `alphas[m]` is member m's vote, `errors[m]` its weighted
    training error and `sample_weights[m]` the (sum-1) weights it was trained with.
    For bagging, `samples[m]` are the training indices member m saw.
    """

    model: tf.keras.Model
    members: List[tf.keras.Model]
    method: str
    vote: str
    alphas: List[float] = dataclasses.field(default_factory=list)
    errors: List[float] = dataclasses.field(default_factory=list)
    sample_weights: List[np.ndarray] = dataclasses.field(default_factory=list)
    samples: List[np.ndarray] = dataclasses.field(default_factory=list)

    def prefix(self, members: int) -> tf.keras.Model:
        """The ensemble of its first `members` members (bagging and SAMME are prefix-closed)."""
        members = validation.positive_int("members", members)
        if members > len(self.members):
            raise ValueError(f"Only {len(self.members)} members are trained, asked for {members}.")
        weights = self.alphas[:members] if self.vote == "weighted" else None
        return assemble(
            self.members[:members],
            vote=self.vote,
            member_weights=weights,
            name=f"benn_{self.method}_n{members}",
        )


def member_builder(name: str, *, seed: int = 0, **build_kwargs) -> Callable[[int], tf.keras.Model]:
    """A `build_member(index)` that builds the registry's BNN `name` (tentacles=1).

    Every member gets its own seed, for its pseudo-Hadamard tentacle and for the
    float first/last layers (Keras draws those from the global seed).
    """
    from larq_tentacle.core.registry import build

    validation.no_unknown(
        build_kwargs,
        ("num_classes", "input_shape", "init", "model_options", "block", "rprelu"),
        where="member_builder",
    )
    options = dict(build_kwargs.pop("model_options", None) or {})

    def build_member(index: int) -> tf.keras.Model:
        member_seed = derive_seed(seed, index)
        seed_everything(member_seed)
        return build(name, tentacles=1, seed=member_seed, **build_kwargs, **options)

    return build_member


def keras_fit(
    recipe: Optional[Recipe] = None, *, validation_data=None, verbose: int = 0, **recipe_fields
):
    """A plain `fit(model, x, y, *, sample_weight, index, workdir)` with a training recipe.

    `recipe` is the `Recipe` the sweep's TentacleNet and FP32 points train with; without
    one, the keywords build it (`epochs` is then required, e.g.
    `keras_fit(epochs=10, batch_size=128)`); keywords next to a recipe override its
    fields. It uses the recipe's epochs, batch size, optimizer and ReduceLROnPlateau
    (lr_factor, lr_patience) on the validation loss (training loss without validation
    data); the arrays are fitted as given (no augmentation) and the member builder
    seeds each member. `training.fit_model` is the project's full version (checkpoints,
    resume, augmentation); this one is for small in-memory problems and tests.
    """
    if recipe is None and "epochs" not in recipe_fields:
        raise TypeError(
            "keras_fit needs a Recipe or epochs=. Fix: e.g. keras_fit(epochs=10) or "
            "keras_fit(Recipe(epochs=10))."
        )
    recipe = dataclasses.replace(recipe or Recipe(), **recipe_fields)
    recipe = Recipe(**recipe.resolved_recipe())

    def fit(model, x, y, *, sample_weight=None, index=1, workdir=None):
        model.compile(
            optimizer=make_optimizer(recipe),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        monitor = "val_loss" if validation_data is not None else "loss"
        plateau = tf.keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=recipe.lr_factor, patience=recipe.lr_patience
        )
        model.fit(
            x,
            y,
            sample_weight=sample_weight,
            batch_size=recipe.batch_size,
            epochs=recipe.epochs,
            validation_data=validation_data,
            shuffle=True,
            verbose=verbose,
            callbacks=[plateau],
        )

    return fit


def _check_data(x, y):
    x = np.asarray(x)
    y = np.asarray(y).reshape(-1)
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(
            f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}."
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"y must hold integer class labels, got dtype {y.dtype}. Fix: y.astype(int)."
        )
    return x, y.astype(np.int64)


def _train_member(build_member, fit, x, y, *, index, sample_weight, workdir):
    """Train member `index` or, when `workdir` has it from an earlier run, reload it."""
    run = None if workdir is None else RunFolder(workdir)
    path = None if run is None else run.member_model(index)
    if path is not None and os.path.exists(path):
        from larq_tentacle.core.serialization import load_model

        return load_model(path, compile=False)
    model = build_member(index)
    member_dir = None if run is None else run.member(index).path
    fit(model, x, y, sample_weight=sample_weight, index=index, workdir=member_dir)
    if path is not None:
        with atomic.atomic_path(path) as temporary:
            model.save(temporary)
    return model


def bagging_samples(
    num_samples: int, *, members: int, sampling: str, seed: int = 0
) -> List[np.ndarray]:
    """Training indices per member: bootstrap draws, or N disjoint random parts."""
    members = validation.positive_int("members", members)
    sampling = validation.choice("sampling", sampling, SAMPLINGS)
    if sampling == "bootstrap":
        # Member k's draw depends on (seed, k) only, so the first N members of a
        # larger bag are exactly a bag of N.
        return [
            np.random.default_rng([seed, k]).integers(0, num_samples, num_samples)
            for k in range(1, members + 1)
        ]
    if members > num_samples:
        raise ValueError(f"Cannot partition {num_samples} samples into {members} non-empty parts.")
    order = np.random.default_rng([seed, 0]).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, members)]


def train_bagging(
    build_member: Callable[[int], tf.keras.Model],
    x,
    y,
    *,
    members: int,
    fit,
    sampling: str = "bootstrap",
    vote: str = "average",
    seed: int = 0,
    workdir=None,
    on_member: Optional[Callable[[int, tf.keras.Model], None]] = None,
) -> BennResult:
    """Bagging: `members` BNNs, each trained by `fit` on its own sample of (x, y).

    # Arguments
        build_member: `index -> fresh model` (1-based), e.g. `member_builder("nin", ...)`.
        fit: `fit(model, x, y, *, sample_weight, index, workdir)`, e.g. `keras_fit(...)`.
        sampling: "bootstrap" (with replacement) or "partition" (disjoint parts, §2.3).
        vote: "average" (softmax) or "majority".
        workdir: if given, each finished member is saved there and reloaded on a
            rerun instead of being retrained.
        on_member: called after each member with (index, model), e.g. for progress.
    """
    x, y = _check_data(x, y)
    members = validation.positive_int("members", members)
    vote = validation.choice("vote", vote, BAGGING_VOTES)
    samples = bagging_samples(len(y), members=members, sampling=sampling, seed=seed)
    trained = []
    for index, sample in enumerate(samples, start=1):
        model = _train_member(
            build_member,
            fit,
            x[sample],
            y[sample],
            index=index,
            sample_weight=None,
            workdir=workdir,
        )
        trained.append(model)
        if on_member:
            on_member(index, model)
    ensemble = assemble(trained, vote=vote, name=f"benn_bagging_n{members}")
    return BennResult(ensemble, trained, "bagging", vote, samples=samples)


def samme_step(weights, wrong, *, num_classes: int):
    """One SAMME round: (α, weighted error, next weights summing to 1).

    α = log((1 - err) / err) + log(K - 1); w_i ← w_i·exp(α·1[wrong_i]), renormalized.
    A member no better than chance (err ≥ 1 - 1/K) gets α = 0 and leaves the
    weights unchanged, so it neither votes nor steers the next member. A perfect
    member (err = 0) gets the α of err = 1e-10 instead of infinity.
    """
    weights = np.asarray(weights, dtype=np.float64)
    wrong = np.asarray(wrong, dtype=bool)
    num_classes = validation.positive_int("num_classes", num_classes, minimum=2)
    weights = weights / weights.sum()
    error = float(np.sum(weights[wrong]))
    if error >= 1.0 - 1.0 / num_classes:
        return 0.0, error, weights
    clipped = min(max(error, 1e-10), 1.0 - 1e-10)
    alpha = math.log((1.0 - clipped) / clipped) + math.log(num_classes - 1)
    updated = weights * np.exp(alpha * wrong)
    return alpha, error, updated / updated.sum()


def train_boosting(
    build_member: Callable[[int], tf.keras.Model],
    x,
    y,
    *,
    members: int,
    fit,
    num_classes: Optional[int] = None,
    workdir=None,
    batch_size: int = 256,
    on_member: Optional[Callable[[int, tf.keras.Model], None]] = None,
) -> BennResult:
    """Boosting: SAMME over `members` BNNs trained with sample weights.

    Each member trains on the full (x, y) with `sample_weight` = the SAMME weights
    scaled to mean 1 (so the loss keeps its scale and the learning rate its meaning).
    With `workdir`, finished members are reloaded and their rounds replayed from
    their predictions, so a rerun continues where it stopped.
    """
    x, y = _check_data(x, y)
    members = validation.positive_int("members", members)
    num_classes = int(num_classes or (y.max() + 1))
    weights = np.full(len(y), 1.0 / len(y))
    result = BennResult(None, [], "boosting", "weighted")
    for index in range(1, members + 1):
        model = _train_member(
            build_member, fit, x, y, index=index, sample_weight=weights * len(y), workdir=workdir
        )
        wrong = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1) != y
        alpha, error, next_weights = samme_step(weights, wrong, num_classes=num_classes)
        result.members.append(model)
        result.alphas.append(alpha)
        result.errors.append(error)
        result.sample_weights.append(weights)
        weights = next_weights
        if on_member:
            on_member(index, model)
    if sum(result.alphas) <= 0:
        raise ValueError(
            f"Every boosting member was no better than chance (weighted errors {result.errors}); "
            "the ensemble has no vote. Fix: train the members longer or with a higher learning "
            "rate."
        )
    result.model = assemble(
        result.members,
        vote="weighted",
        member_weights=result.alphas,
        name=f"benn_boosting_n{members}",
    )
    return result
