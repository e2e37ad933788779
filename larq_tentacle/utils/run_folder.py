"""The files of a training run's folder (its workdir), named in one place.

`lt.train` writes a run folder; training resumes from it, export reads its model and
preprocessing, the experiments read its report and history. Every one of them asks a
`RunFolder` for the path instead of spelling the file name:

    config.json         the resolved TrainConfig
    preprocessing.json  how raw images become model inputs (see larq_tentacle.data)
    best_model.h5       weights with the lowest val_loss (the test number comes from it)
    last_model.h5       weights after the last completed epoch
    history.csv         one row per epoch (loss, accuracy, val_*, lr, epoch_time_s)
    report.json         test accuracy, Δ vs FP32, paper size, wall time, versions, ...
    test_predictions.csv  label and predicted class of every test image, in test order
    int8_model.h5       with --int8_epochs: the fine-tuned int8 model (what an int8 export writes)
    int8/               with --int8_epochs: the fine-tune's own run folder (training/int8_tuning.py)
    tensorboard/        TensorBoard logs
    backup/             Keras BackupAndRestore state while a run is unfinished
    workers/<task>/     the same files, written by a non-chief worker of a multi-worker run
    member<k>/          member k of an ensemble trained in this folder (a run folder too)
    member<k>.h5        member k's finished model (an ensemble reloads it instead of training)
    member.json         a BENN member's wall time and epochs (in the member's own folder)

`.h5` is the folder's model format (apps/export.py and older runs read it).
"""

import json
import os
import re
from typing import List, Optional

from larq_tentacle.utils import atomic

# Temporary files of `atomic` writes: ".<name>.tmp" or ".<name>.tmp.<suffix>".
_TEMPORARY = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")


class Folder:
    """A folder of named files: `file(name)` is its path, `os.fspath(folder)` the folder's."""

    CONFIG = "config.json"

    def __init__(self, path):
        self.path = os.path.expanduser(os.fspath(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def __fspath__(self) -> str:
        return self.path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config(self) -> str:
        return self.file(self.CONFIG)

    def read_json(self, path) -> Optional[dict]:
        """The JSON file `path` (e.g. `run.report`) of this folder; None if absent."""
        if not os.path.exists(path):
            return None
        with open(path) as file:
            return json.load(file)

    def write_json(self, path, values) -> None:
        """Write `values` to `path` atomically (a reader never sees half a file)."""
        atomic.write_json(path, values)


class RunFolder(Folder):
    """Paths of a run folder's files, and atomic JSON reads/writes of them.

    !!! example
        ```python
        run = RunFolder("runs/nin5")
        lt.load_model(run.best_model)
        accuracy = run.read_json(run.report)["test_accuracy"]
        ```
    """

    PREPROCESSING = "preprocessing.json"
    BEST_MODEL = "best_model.h5"
    LAST_MODEL = "last_model.h5"
    HISTORY = "history.csv"
    REPORT = "report.json"
    TENSORBOARD = "tensorboard"
    BACKUP = "backup"
    WORKERS = "workers"
    MEMBER_REPORT = "member.json"
    TEST_PREDICTIONS = "test_predictions.csv"
    INT8_MODEL = "int8_model.h5"
    INT8_TUNING = "int8"
    # The models a run folder may hold, the preferred first.
    MODELS = (BEST_MODEL, LAST_MODEL)

    @property
    def preprocessing(self) -> str:
        return self.file(self.PREPROCESSING)

    @property
    def best_model(self) -> str:
        return self.file(self.BEST_MODEL)

    @property
    def last_model(self) -> str:
        return self.file(self.LAST_MODEL)

    @property
    def history(self) -> str:
        return self.file(self.HISTORY)

    @property
    def report(self) -> str:
        return self.file(self.REPORT)

    @property
    def test_predictions(self) -> str:
        return self.file(self.TEST_PREDICTIONS)

    @property
    def tensorboard(self) -> str:
        return self.file(self.TENSORBOARD)

    @property
    def backup(self) -> str:
        return self.file(self.BACKUP)

    @property
    def int8_model(self) -> str:
        return self.file(self.INT8_MODEL)

    def int8_tuning(self) -> "RunFolder":
        """The run folder of the quantization-aware fine-tune (`--int8_epochs`)."""
        return RunFolder(self.file(self.INT8_TUNING))

    @property
    def member_report(self) -> str:
        return self.file(self.MEMBER_REPORT)

    def worker(self, task_type: str, task_id: int) -> "RunFolder":
        """The folder a non-chief worker of a multi-worker run writes its copy into."""
        return RunFolder(os.path.join(self.path, self.WORKERS, f"{task_type}{task_id}"))

    def member(self, index: int) -> "RunFolder":
        """The run folder of ensemble member `index` (1-based) trained in this folder."""
        return RunFolder(self.file(f"member{index}"))

    def member_model(self, index: int) -> str:
        """The finished model of ensemble member `index` (1-based), next to its folder."""
        return self.file(f"member{index}.h5")

    def models(self) -> List[str]:
        """The model files present, best model first."""
        return [self.file(name) for name in self.MODELS if os.path.isfile(self.file(name))]

    def make(self) -> "RunFolder":
        os.makedirs(self.path, exist_ok=True)
        return self

    def remove_stale_temporaries(self) -> None:
        """Temporary files of atomic writes that a killed process left behind."""
        for name in os.listdir(self.path):
            if _TEMPORARY.match(name) and os.path.isfile(self.file(name)):
                os.remove(self.file(name))
