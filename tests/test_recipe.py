"""The training recipe: one dataclass, its generated flags, `fused` through to the model."""

import dataclasses
import json
import os

import pytest
from absl import flags

import larq_tentacle as lt
from helpers import loaded_app, run_main
from larq_tentacle.core import fusion
from larq_tentacle.training import recipe_flags
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.recipe import Recipe, fused_from_flag, recipe_fields


def test_every_recipe_field_has_a_flag_and_every_recipe_flag_a_field():
    flag_values = flags.FlagValues()
    names = recipe_flags.define_recipe_flags(TrainConfig(model="nin"), flag_values)
    assert set(recipe_fields()) <= set(names)
    assert set(flag_values) == {recipe_flags.flag_name(name) for name in names}
    for name in recipe_fields():
        assert (
            flag_values[recipe_flags.flag_name(name)].help
            == dataclasses.fields(Recipe)[recipe_fields().index(name)].metadata["help"]
        )


def test_a_config_without_a_recipe_field_gets_no_flag_for_it():
    @dataclasses.dataclass
    class Partial:  # like SweepConfig: no seed (it has seeds) and no fused
        model: str = "nin"
        dataset: str = None
        data_dir: str = None
        cache_mb: float = 512.0
        skip_bad_images: bool = False
        input_size: int = None
        model_options: dict = dataclasses.field(default_factory=dict)
        epochs: int = 7

    flag_values = flags.FlagValues()
    recipe_flags.define_recipe_flags(Partial(), flag_values)
    assert "epochs" in flag_values and "seed" not in flag_values and "fused" not in flag_values
    assert flag_values["epochs"].default == 7


@pytest.fixture(scope="module")
def app():
    yield from loaded_app("train")


def test_train_app_has_one_flag_per_train_config_field(app):
    for field in dataclasses.fields(TrainConfig):
        assert recipe_flags.flag_name(field.name) in flags.FLAGS, field.name


def test_fused_flag_values():
    assert [fused_from_flag(text) for text in ("auto", "true", "FALSE", True)] == [
        "auto",
        True,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="fused.*'maybe'"):
        fused_from_flag("maybe")
    with pytest.raises(ValueError, match="no tentacles to fuse"):
        TrainConfig(model="nin", precision="float", fused=True).resolved()
    with pytest.raises(ValueError, match="fused"):
        TrainConfig(model="nin", fused="yes").resolved()
    assert TrainConfig(model="nin").fused is False
    assert TrainConfig(model="nin", epochs=3).recipe() == Recipe(epochs=3)


def test_bad_fused_flag_is_one_error_line(app, capsys, tmp_path):
    code = run_main(
        app, ["--model=nin", "--fused=maybe", f"--workdir={tmp_path}"], program="train.py"
    )
    assert code == 2 and "--fused=auto" in capsys.readouterr().err


def test_fused_true_flag_trains_a_fused_model(app, tmp_path):
    argv = [
        "--model=nin",
        "--dataset=digits",
        "--input_size=4",
        "--tentacles=2",
        "--epochs=1",
        "--batch_size=64",
        "--fused=true",
        "--verbose=0",
        f"--workdir={tmp_path}",
    ]
    assert run_main(app, argv, program="train.py") == 0
    assert json.loads((tmp_path / "config.json").read_text())["fused"] is True
    assert fusion.is_fused(lt.load_model(os.path.join(tmp_path, "best_model.h5"), compile=False))


def test_config_json_of_an_older_run_without_new_fields_still_resumes(tmp_path):
    config = TrainConfig(model="nin", dataset="digits", input_size=4, epochs=1, batch_size=64)
    lt.train(config, tmp_path, verbose=0)
    path = tmp_path / "config.json"
    older = json.loads(path.read_text())
    del older["fused"]
    path.write_text(json.dumps(older))
    assert TrainConfig.from_dict(older).fused is False
    report = lt.train(config, tmp_path, verbose=0)  # the same run: not refused, not retrained
    assert report["epochs_completed"] == 1


def test_fused_given_as_text_resolves_to_what_build_takes():
    from larq_tentacle.training.recipe import Recipe

    assert Recipe(fused="true").resolved_recipe()["fused"] is True
    assert Recipe(fused="False").resolved_recipe()["fused"] is False
    assert Recipe(fused="auto").resolved_recipe()["fused"] == "auto"
    with pytest.raises(ValueError, match="--fused=auto"):
        Recipe(fused="sometimes").resolved_recipe()
