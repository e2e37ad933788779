"""Model core: binarization, initializers, the graph reader, the TentacleNet template,
layout, fused tentacles, sizes, serialization and the model registry.

Imports only `larq_tentacle.utils` (and the base models in `larq_tentacle.models`,
which import the core). Training, export and experiments build on this room.
"""
