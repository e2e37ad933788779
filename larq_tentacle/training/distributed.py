"""tf.distribute strategies for training, and where each worker writes its files.

`multi_worker` reads the cluster from the `TF_CONFIG` environment variable (one JSON per
process, see docs/training.md). Every worker runs the same program; the chief writes the
run's files into the workdir, every other worker into `<workdir>/workers/<type><index>`,
because Keras saves read distributed variables through collectives that every worker
must join (so all of them save, each to its own place).
"""

import json
import os

import tensorflow as tf

from larq_tentacle.utils import validation
from larq_tentacle.utils.run_folder import RunFolder

STRATEGIES = ("default", "mirrored", "multi_worker")
TF_CONFIG = "TF_CONFIG"

_TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)


def check_name(name) -> str:
    return validation.choice("strategy", name, STRATEGIES)


def cluster_spec() -> dict:
    """TF_CONFIG parsed and checked, for --strategy=multi_worker."""
    raw = os.environ.get(TF_CONFIG)
    if not raw:
        raise ValueError(
            f"--strategy=multi_worker needs the {TF_CONFIG} environment variable on every worker. "
            f"Fix: e.g. {_TF_CONFIG_EXAMPLE} (index 1 on the second host)."
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task_type, index = config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{TF_CONFIG}={raw!r} is not a valid cluster description ({error!r}). "
            f"Fix: e.g. {_TF_CONFIG_EXAMPLE}."
        ) from None
    jobs = config["cluster"]
    if task_type not in jobs or not 0 <= int(index) < len(jobs[task_type]):
        raise ValueError(f"{TF_CONFIG}: task {task_type}:{index} is not in the cluster {jobs}.")
    if not isinstance(workers, list) or not workers:
        raise ValueError(
            f"{TF_CONFIG}: the cluster needs a non-empty 'worker' list, got {workers!r}."
        )
    return config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`. Create it before any other TensorFlow work:
    MultiWorkerMirroredStrategy must configure collectives at program start."""
    name = check_name(name)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        cluster_spec()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def num_workers(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    return max(
        1,
        sum(
            len(tasks)
            for job, tasks in resolver.cluster_spec().as_dict().items()
            if job in ("chief", "worker")
        ),
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    return bool(strategy.extended.should_checkpoint)


def worker_dir(workdir, strategy: tf.distribute.Strategy = None) -> str:
    """Where this process writes: the workdir for the chief (and any single process)."""
    strategy = strategy or tf.distribute.get_strategy()
    workdir = os.path.expanduser(os.fspath(workdir))
    if is_chief(strategy):
        return workdir
    resolver = strategy.cluster_resolver
    return RunFolder(workdir).worker(resolver.task_type, resolver.task_id).path
