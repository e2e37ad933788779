"""What loading a dataset gives: `DatasetBundle` (batched tf.data pipelines and what
describes them) and, for the datasets held in memory, `DataArrays`."""

import dataclasses
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.data.stream_source import StreamSource


@dataclasses.dataclass
class DataArrays:
    """Preprocessed splits: float32 images at the model's input shape and int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: List[str]
    preprocessing: dict

    def sizes(self) -> Dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


@dataclasses.dataclass
class DatasetBundle:
    """Batched tf.data pipelines of the three splits, with what describes them.

    `arrays` holds the preprocessed splits of in-memory datasets (digits, cifar, fer2013);
    streamed datasets (folder:, tfds:) have `source` instead and `arrays` None.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    class_names: List[str]
    preprocessing: dict
    sizes: Dict[str, int]
    arrays: Optional[DataArrays] = None
    source: Optional[StreamSource] = None
    cached: List[str] = dataclasses.field(default_factory=list)
