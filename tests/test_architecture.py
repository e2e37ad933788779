"""The package's rooms and the one direction of their dependencies, read from the source.

utils <- core (with the base models), data <- training, deploy <- experiments <- apps
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "larq_tentacle"

# Room -> the rooms its modules may import (besides their own).
ALLOWED = {
    "utils": set(),
    "core": {"utils", "models"},
    "models": {"utils", "core"},
    "data": {"utils"},
    "training": {"utils", "core", "models", "data"},
    "deploy": {"utils", "core", "models", "data"},
    "experiments": {"utils", "core", "models", "data", "training", "deploy"},
}
ROOMS = set(ALLOWED)


def _room_of_file(path: pathlib.Path) -> str:
    if path.is_relative_to(ROOT / "models"):
        return "models"
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""  # "" = the package's front door


def _library_files():
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "models").rglob("*.py"))
    assert len(files) > 20, files
    return files


def _imported_modules(tree: ast.AST):
    """Every module name an import statement in `tree` refers to (with its line)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def _room_of_module(module: str):
    parts = module.split(".")
    if parts[0] != "larq_tentacle" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ROOMS else None


def test_every_library_module_lives_in_a_room():
    loose = [
        p.relative_to(ROOT).as_posix()
        for p in _library_files()
        if _room_of_file(p) == ""
        and p.name not in ("__init__.py", "__main__.py", "_environment.py")
    ]
    assert loose == []


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_rooms_import_only_what_the_dependency_rule_allows(path):
    room = _room_of_file(path)
    if room == "":
        return  # the front door re-exports from every room
    tree = ast.parse(path.read_text(), filename=str(path))
    wrong = sorted(
        {
            f"line {line}: {module}"
            for module, line in _imported_modules(tree)
            if (target := _room_of_module(module)) not in (None, room)
            and target not in ALLOWED[room]
        }
    )
    assert wrong == [], f"{room} may import only {sorted(ALLOWED[room])}"


def _python_sources():
    for folder in ("larq_tentacle", "models", "apps", "benchmarks"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_private_tensorflow_or_keras_internals():
    private = ("tensorflow.python", "tf_keras.src", "keras.src")
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in _python_sources()
        if path.parent.name != "benchmarks"
        for module, line in _imported_modules(ast.parse(path.read_text()))
        if module.startswith(private)
    ]
    assert found == []


def _private_uses(path: pathlib.Path):
    """`from larq_tentacle.x import _name`, and `module._name` on an imported package module."""
    tree = ast.parse(path.read_text())
    modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("larq_tentacle"):
            for alias in node.names:
                if alias.name.startswith("_") and node.module != "larq_tentacle":
                    found.append(f"{node.lineno}: {node.module}.{alias.name}")
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {
                a.asname for a in node.names if a.name.startswith("larq_tentacle") and a.asname
            }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules | {"lt", "larq_tentacle"}
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "path",
    [*_python_sources(), *sorted((ROOT / "tests").glob("*.py"))],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_no_module_reaches_into_another_modules_private_names(path):
    assert _private_uses(path) == []


def test_every_public_name_is_listed_and_resolves():
    import larq_tentacle as lt

    lazy = {"train", "load_dataset", "export", "verify", "fuse", "unfuse", "train_bagging",
            "train_boosting", "run_sweep", "TrainConfig", "SweepConfig", "op_census"}
    assert lazy <= set(lt.__all__)
    missing = [name for name in lt.__all__ if getattr(lt, name, None) is None]
    assert missing == []
    assert callable(lt.export) and callable(lt.train)  # no room shadows a function


def test_no_keras_layer_overrides_a_private_keras_method():
    import inspect

    from larq_tentacle.core import serialization

    overrides = []
    for name, cls in serialization.custom_objects().items():
        if not (inspect.isclass(cls) and cls.__module__.startswith("larq_tentacle")):
            continue
        for attr in vars(cls):
            if attr.startswith("_") and not attr.startswith("__"):
                if any(attr in vars(base) for base in cls.__mro__[1:]):
                    overrides.append(f"{cls.__name__}.{attr}")
    assert sorted(set(overrides)) == []


# "About 450 lines a module, about 70 a function" (issue #11), with a little slack so
# a docstring line does not fail the build; above these a module or function has grown
# a second concept and should be split.
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 75


def _code_files():
    for folder in ("larq_tentacle", "models", "apps"):
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", list(_code_files()), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long_functions = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            length = node.end_lineno - first + 1
            if length > MAX_FUNCTION_LINES:
                long_functions.append(f"{node.name}: {length} lines")
    assert long_functions == []


def test_setup_cfg_installs_every_package_of_the_source_tree():
    """A sub-package missing from setup.cfg only shows in a regular (non-editable) install."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in PACKAGE.rglob("__init__.py")
    } | {"larq_tentacle.models"}
    assert in_tree - listed == set()
