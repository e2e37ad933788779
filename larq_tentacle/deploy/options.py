"""The export choices and defaults, in a module that imports nothing heavy.

apps/export.py defines its flags from these before TensorFlow or Larq Compute
Engine load; the library validates its arguments against the same tuples.
"""

TARGETS = ("arm", "xcore")  # LCE converter targets
TENSOR_NAMES = ("compact", "converter")  # see exporting.export(tensor_names=...)
DEFAULT_ATOL = 1e-3  # parity tolerance on the outputs
DEFAULT_RANDOM_SAMPLES = 8  # random inputs added to every parity check
QUANTIZE = ("none", "int8")  # see exporting.export(quantize=...)
DEFAULT_INT8_STEPS = 4  # int8 parity tolerance: output quantization steps
MIN_INT8_AGREEMENT = 0.99  # int8 parity: top-1 agreement with the fake-quantized Keras model
MIN_CALIBRATION_SAMPLES = 16
