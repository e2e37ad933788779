"""The export choices and defaults, in a module that imports nothing heavy.

apps/export.py defines its flags from these before TensorFlow or Larq Compute
Engine load; the library validates its arguments against the same tuples.
"""

TARGETS = ("arm", "xcore")  # LCE converter targets
TENSOR_NAMES = ("compact", "converter")  # see exporting.export(tensor_names=...)
DEFAULT_ATOL = 1e-3  # parity tolerance on the outputs
DEFAULT_RANDOM_SAMPLES = 8  # random inputs added to every parity check
