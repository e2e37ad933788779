"""Fused tentacles: all n tentacles of a TentacleNet as one network of grouped convs.

The n tentacles have the same topology and all read the shared stem, so they can
run as one network (the *fused* form): the first tentacle conv has n·F filters
(its input is the stem, shared by all), every later binary conv has n·F filters
and `groups=n`, and BatchNorm, pooling, activations and residual adds work per
channel anyway. The channels of every fused tensor are the n per-tentacle tensors
concatenated in tentacle order, so global pooling yields exactly the features
(head "b") or logits (head "a") that the branched form concatenates.

Larq Compute Engine converts each grouped binary conv into ONE LceBconv2d (n
tentacles: 1 op per layer instead of n), with the same bytes. The catch: LCE's
default binary kernel refuses grouped convs, only its indirect-BGEMM kernel runs
them (`use_indirect_bgemm=True`), and the converter needs the input channels per
group to be a multiple of 32. So: train branched, keep the branched form as the
default export, and fuse for a runtime that registers the indirect-BGEMM kernel.

`fuse(model)` and `unfuse(model)` convert between the forms, weights included
(kernels, biases, BatchNorm statistics, head), so predictions agree to float
rounding. Fused layers are named `tentacles<n>_<name>` (e.g. `tentacles3_conv2`),
stem and head layers keep their names.

Modules: `plan` reads and checks a branched TentacleNet; `fusing` builds the fused
form (and states LCE's width rule); `unfusing` builds the branched form back;
`choosing` picks the training form for `build(..., fused=...)`. The fused form's
own layers are in `larq_tentacle.core.fused_layers`.
"""

from larq_tentacle.core.fusion.choosing import (
    AUTO_CHOICE,
    IMPLEMENTATIONS,
    device_kind,
    resolve_fused,
)
from larq_tentacle.core.fusion.fusing import (
    LCE_GROUP_CHANNELS,
    GroupProblem,
    fuse,
    lce_group_problems,
)
from larq_tentacle.core.fusion.plan import fused_tentacles, is_fused
from larq_tentacle.core.fusion.unfusing import unfuse

__all__ = [
    "AUTO_CHOICE",
    "IMPLEMENTATIONS",
    "LCE_GROUP_CHANNELS",
    "GroupProblem",
    "device_kind",
    "fuse",
    "fused_tentacles",
    "is_fused",
    "lce_group_problems",
    "resolve_fused",
    "unfuse",
]
