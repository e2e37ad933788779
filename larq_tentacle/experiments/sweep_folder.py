"""The files of a sweep's workdir, named in one place.

    sweep_config.json   the sweep's config (the union of every list run here)
    points/<id>.json    one finished point (method, n, seed), written atomically
    runs/<name>/        the run folder of a training run: the point id of an FP32 or
                        TentacleNet point, `<method>_pool_s<seed>` of a BENN pool
                        (`<method>_best_pool_s<seed>` with the best recipe; the
                        point id for partition bagging), with its `member<k>` folders
                        and `benn_<method>_n<N>.h5`, the pool's largest ensemble
    sweep.csv, summary.csv, fig3_delta.png, accuracy_vs_kb.png, table2.md
                        the outputs `results.render` draws from the points
"""

import os

from larq_tentacle.utils.run_folder import Folder, RunFolder


class SweepFolder(Folder):
    """Paths of a sweep workdir's files; `run(name)` is one training run's `RunFolder`."""

    CONFIG = "sweep_config.json"
    POINTS = "points"
    RUNS = "runs"
    OUTPUTS = ("sweep.csv", "summary.csv", "fig3_delta.png", "accuracy_vs_kb.png", "table2.md")

    @property
    def points(self) -> str:
        return self.file(self.POINTS)

    def point(self, point_id: str) -> str:
        """The JSON file of the finished point `point_id` (see `plan.point_id`)."""
        return os.path.join(self.points, f"{point_id}.json")

    def run(self, name: str) -> RunFolder:
        return RunFolder(os.path.join(self.path, self.RUNS, name))

    def ensemble(self, pool: str, method: str, members: int) -> str:
        """The largest ensemble of the BENN pool run `pool`, as one Keras model file."""
        return self.run(pool).file(f"benn_{method}_n{members}.h5")

    def outputs(self) -> dict:
        """{output name: path} of every file `results.render` writes."""
        return {name: self.file(name) for name in self.OUTPUTS}
