"""Layers are enforced: model/ never imports the simulator or plotting; nothing imports the CLI."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "model": ("simpy", "matplotlib", "simulations", "reports", "cpsim"),
    "simulations": ("matplotlib", "reports", "cpsim"),
    "reports": ("cpsim", "simpy"),
}


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_does_not_import_what_it_must_not(package):
    """Each layer imports only what the architecture allows."""
    for path, names in imported_modules(package).items():
        bad = names & set(FORBIDDEN[package])
        assert not bad, f"{path} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["model", "simulations", "reports", "cpsim"])
def test_packages_resolve_inside_the_repository(package):
    """The generic package names are ours, not some other installed distribution's."""
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(ROOT)


def test_no_global_random_state_in_library_code():
    """Randomness is injected: no global numpy or stdlib RNG calls in library code."""
    bad = []
    for package in ("model", "simulations", "reports"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            for needle in ("np.random.seed(", "np.random.rand", "random.random(",
                           "random.seed(", "np.random.choice(", "random.choice("):
                if needle in text:
                    bad.append(f"{path.name}: {needle}")
    assert not bad


def test_yaml_is_only_loaded_safely():
    """No unsafe YAML loading or eval anywhere in library code."""
    for package in ("model", "simulations", "reports", "cpsim"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "yaml.load(" not in text and "yaml.unsafe_load" not in text, path
            assert "eval(" not in text.replace("evaluate(", ""), path
