"""Keras 2 selection, the Keras 3 error, versions, and the install layout."""

import os
import subprocess
import sys

import pytest

import larq_tentacle as lt

QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_python(code, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env or QUIET,
        cwd=cwd,
        timeout=300,
    )


def test_import_sets_legacy_keras_as_a_string():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    import tensorflow as tf

    assert tf.keras.layers.Layer.__module__.startswith("tf_keras")


@pytest.mark.slow
def test_keras_3_loaded_first_raises_an_import_error_with_the_fix(tmp_path):
    env = {k: v for k, v in QUIET.items() if k != "TF_USE_LEGACY_KERAS"}
    result = run_python("import tensorflow; import larq_tentacle", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert (
        "TF_USE_LEGACY_KERAS" in result.stderr
        and "before TensorFlow is first imported" in result.stderr
    )


@pytest.mark.slow
def test_legacy_keras_switched_off_explicitly_is_refused(tmp_path):
    result = run_python(
        "import larq_tentacle", env={**QUIET, "TF_USE_LEGACY_KERAS": "0"}, cwd=tmp_path
    )
    assert result.returncode != 0 and "TF_USE_LEGACY_KERAS='0'" in result.stderr


@pytest.mark.slow
def test_version_command_prints_the_versions_in_use(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "larq_tentacle", "--version"],
        capture_output=True,
        text=True,
        env=QUIET,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for package in ("tensorflow", "tf-keras", "larq", "larq-compute-engine", "numpy"):
        assert package in result.stdout
    assert "tf_keras" in result.stdout


def test_doctor_reports_the_tested_set(capsys):
    found = lt.doctor()
    assert found["tensorflow"] == "2.16.2" and found["larq"] == "0.14.0"
    assert "larq-compute-engine" in capsys.readouterr().out


def test_models_folder_installs_under_the_package_namespace(tmp_path):
    result = run_python(
        "import importlib.util, larq_tentacle.models as m; "
        "print(importlib.util.find_spec('models') is None, sorted(s.name for s in m.SPECS))",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['fernet', 'nin', 'resnet9']"
