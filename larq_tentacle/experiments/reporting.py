"""Tables that compare our models with the paper's numbers."""

from typing import List

from larq_tentacle.core.registry import get_spec, list_models
from larq_tentacle.core.size import larq_memory_kb, paper_size_kb
from larq_tentacle.utils.tables import markdown_table


def paper_size_rows(names=None) -> List[dict]:
    """Per model: FP32, BNN and the paper's TentacleNet, sized both ways, with the paper's kB."""
    from larq_tentacle.core.registry import build

    rows = []
    for name in names or list_models():
        spec = get_spec(name)
        tentacles, paper_tn = spec.paper_size_kb["tentaclenet"]
        cases = [
            ("FP32", dict(precision="float"), spec.paper_size_kb["float"]),
            ("BNN", dict(tentacles=1), spec.paper_size_kb["binary"]),
            (f"TentacleNet n={tentacles}", dict(tentacles=tentacles), paper_tn),
        ]
        for label, kwargs, paper in cases:
            model = build(name, **kwargs, **spec.paper_options)
            ours = paper_size_kb(model)
            rows.append(
                dict(
                    model=name,
                    variant=label,
                    options=", ".join(f"{k}={v}" for k, v in spec.paper_options.items()),
                    paper_kb=paper,
                    ours_kb=ours,
                    diff_percent=100.0 * (ours - paper) / paper,
                    larq_memory_kb=larq_memory_kb(model),
                )
            )
    return rows


def size_table_markdown(names=None) -> str:
    return markdown_table(
        paper_size_rows(names),
        ["model", "variant", "options", "paper_kb", "ours_kb", "diff_percent", "larq_memory_kb"],
        ["model", "variant", "options", "paper kB", "ours kB (paper rule)", "Δ %",
         "larq summary kB"],
    )
