"""The log level of the command-line apps: INFO lines hidden, warnings kept.

TensorFlow's checkpoint code logs INFO ("Sharding callback duration", ...) both
through its own Python logger and through absl directly; at every epoch they bury
Keras's progress lines and the apps' tables.
"""


def quiet_info_logs() -> None:
    """Raise TensorFlow's Python logger and absl's verbosity to WARNING."""
    import tensorflow as tf
    from absl import logging

    tf.get_logger().setLevel("WARNING")
    logging.set_verbosity(logging.WARNING)
