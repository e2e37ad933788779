"""The paper's three float base models (Table 1). Installed as `larq_tentacle.models`.

Each module has a float builder and a `SPEC` for the registry; `larq_tentacle.build`
turns the float model into the BNN / TentacleNet through the template.
"""

from larq_tentacle.models import fernet, nin, resnet9

SPECS = (fernet.SPEC, nin.SPEC, resnet9.SPEC)
