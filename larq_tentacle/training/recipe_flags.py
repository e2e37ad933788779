"""absl flags shared by the apps that train (train.py, sweep.py): model, data and the recipe.

Defined once so the two command lines cannot drift apart; each app passes its
config's defaults and defines its own extra flags.
"""

from absl import flags

from larq_tentacle.utils import validation


def define_recipe_flags(defaults) -> None:
    """Define --model, --dataset, --data_dir, the optimizer/schedule flags, --augment,
    --input_size and --model_option, with defaults read from `defaults` (a TrainConfig
    or SweepConfig)."""
    flags.DEFINE_string("model", None, "Registered model: fernet, nin, resnet9.")
    flags.DEFINE_string("dataset", None, "cifar10, cifar100, fer2013 or digits (default: the model's own).")
    flags.DEFINE_string("data_dir", None, "Where the dataset lives (tfds data_dir; folder of fer2013.csv).")
    flags.DEFINE_integer("epochs", defaults.epochs, "Epochs per model (the paper: 300).")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Global batch size.")
    flags.DEFINE_float("learning_rate", defaults.learning_rate, "Initial learning rate.")
    flags.DEFINE_string("optimizer", defaults.optimizer, "adam or sgd.")
    flags.DEFINE_integer("lr_patience", defaults.lr_patience, "Epochs without val_loss progress before the LR drops.")
    flags.DEFINE_float("lr_factor", defaults.lr_factor, "Factor the LR is multiplied by on a plateau.")
    flags.DEFINE_string("augment", defaults.augment, "default, none, crop or crop_flip.")
    flags.DEFINE_integer("input_size", None, "Train at input_size x input_size (default: the model's size).")
    flags.DEFINE_multi_string("model_option", [], "Architecture option key=value, e.g. projection_shortcuts=2.")


def recipe_values(parsed) -> dict:
    """The config fields the recipe flags set, read from parsed flags (FLAGS)."""
    if parsed.model is None:
        raise ValueError("--model is required. Fix: e.g. --model=nin (see lt.list_models()).")
    return dict(
        model=parsed.model,
        dataset=parsed.dataset,
        data_dir=parsed.data_dir,
        epochs=parsed.epochs,
        batch_size=parsed.batch_size,
        learning_rate=parsed.learning_rate,
        optimizer=parsed.optimizer,
        lr_patience=parsed.lr_patience,
        lr_factor=parsed.lr_factor,
        augment=parsed.augment,
        input_size=parsed.input_size,
        model_options=validation.model_options(parsed.model_option),
    )
