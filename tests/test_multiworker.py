"""Two workers on localhost with MultiWorkerMirroredStrategy end with identical weights."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import larq_tentacle as lt
from larq_tentacle.training import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "train.py")


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_tf_config_errors_name_the_fix(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        distributed.cluster_spec()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not a valid cluster"):
        distributed.cluster_spec()
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}
        ),
    )
    with pytest.raises(ValueError, match="worker:3 is not in the cluster"):
        distributed.cluster_spec()


@pytest.mark.slow
def test_two_workers_on_localhost_end_with_identical_weights(tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    workdir = tmp_path / "run"
    command = [
        sys.executable,
        APP,
        "--model=nin",
        "--dataset=digits",
        "--input_size=4",
        "--tentacles=2",
        "--epochs=1",
        "--batch_size=64",
        "--strategy=multi_worker",
        "--verbose=2",
        f"--workdir={workdir}",
    ]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        codes = [process.wait(timeout=900) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2)]
    assert codes == [0, 0], logs

    chief_dir, other_dir = workdir, workdir / "workers" / "worker1"
    reports = [json.loads((d / "report.json").read_text()) for d in (chief_dir, other_dir)]
    assert [r["num_workers"] for r in reports] == [2, 2]
    assert [r["epochs_completed"] for r in reports] == [1, 1]
    assert reports[0]["test_accuracy"] == reports[1]["test_accuracy"]
    for name in ("last_model.h5", "best_model.h5"):
        chief = lt.load_model(chief_dir / name, compile=False).get_weights()
        other = lt.load_model(other_dir / name, compile=False).get_weights()
        assert len(chief) == len(other)
        for a, b in zip(chief, other):
            np.testing.assert_array_equal(a, b)
    rows = (chief_dir / "history.csv").read_text().splitlines()
    assert len(rows) == 2 and len((other_dir / "history.csv").read_text().splitlines()) == 2
