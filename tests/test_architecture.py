"""Layers are enforced: model/ never imports the simulator or plotting; nothing imports the CLI."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "model": ("simpy", "numpy", "matplotlib", "click", "simulations", "reports", "cpsim"),
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


# -- readers do not run: drawing or reading results never loads the engine -----------------------
ENGINE_MODULES = ("simpy", "simulations.engine")
"""What a module that only draws or reads must not load, however indirectly."""


def readers() -> list[str]:
    """Every module of ``reports/`` and of the command line (not ``__main__``, which runs it).

    The command line imports what runs a simulation inside the commands that run one, so
    importing any of its modules loads no engine either.
    """
    names = []
    for package in ("reports", "cpsim"):
        for path in sorted((ROOT / package).glob("*.py")):
            if path.stem == "__init__":
                names.append(package)
            elif path.stem != "__main__":
                names.append(f"{package}.{path.stem}")
    return names


def engine_loaded_by(modules: list[str], extra_path: Path | None = None) -> dict[str, list[str]]:
    """For each module, the engine modules importing it loads, each in a fresh interpreter.

    Direct imports are not enough (a report reached the engine through
    ``simulations.experiments`` once), so each module is really imported, alone, and
    ``sys.modules`` read afterwards. ``extra_path`` goes first on the interpreter's path.
    """
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
            "print(' '.join(m for m in sys.argv[2:] if m in sys.modules))")
    path = [str(p) for p in (extra_path, ROOT) if p is not None]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [*path, *filter(None, [os.environ.get("PYTHONPATH")])])}

    def load(module: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", code, module, *ENGINE_MODULES],
                              cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
        assert done.returncode == 0, f"importing {module} failed:\n{done.stderr}"
        return done.stdout.split()

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(modules, pool.map(load, modules), strict=True))


def test_reports_and_the_command_line_never_load_the_engine():
    """A report can be rebuilt, and the command line started, on a machine without SimPy."""
    modules = readers()
    assert {"reports.compare", "reports.sweep", "reports.report", "cpsim.cli"} <= set(modules)
    loaded = {m: found for m, found in engine_loaded_by(modules).items() if found}
    assert loaded == {}, "these modules load the engine: " + "; ".join(
        f"{m} loads {', '.join(found)}" for m, found in loaded.items())


def test_a_report_that_imports_the_engine_is_caught(tmp_path):
    """The check bites: a report module importing the engine, even indirectly, is named."""
    (tmp_path / "engine_report.py").write_text("from reports import figures\n"
                                               "import simulations.engine\n")
    (tmp_path / "indirect_report.py").write_text("import engine_report\n")
    (tmp_path / "clean_report.py").write_text("from simulations.results import load_sweep\n")
    found = engine_loaded_by(["engine_report", "indirect_report", "clean_report"], tmp_path)
    assert found == {"engine_report": list(ENGINE_MODULES),
                     "indirect_report": list(ENGINE_MODULES), "clean_report": []}


# -- no import circle between the model's modules -----------------------------------------------
def package_import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (under ``root``) and the package's modules it imports.

    Read from the source (every ``import`` anywhere, including inside functions, where a
    circle is usually hidden), not by importing. An import of a package that contains the
    importer is left out: Python has already imported it.
    """
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*here[:len(here) - node.level + 1], *filter(None, [base])])
                targets.append(base)
                targets.extend(f"{base}.{alias.name}" for alias in node.names)
        found = {ours(t) for t in targets}
        graph[name] = {m for m in found
                       if m is not None and m != name and not name.startswith(m + ".")}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary circle of imports, each as the modules along it."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph)
    g.add_edges_from((a, b) for a, targets in graph.items() for b in targets)
    return sorted(sorted(c) for c in nx.simple_cycles(g))


def test_model_modules_import_each_other_without_a_circle():
    """No two model modules import each other, directly or round a longer circle."""
    graph = package_import_graph(ROOT, "model")
    assert "model.findings" in graph["model.check"]  # the graph does see the imports
    assert import_cycles(graph) == []


@pytest.mark.parametrize("package", ["simulations", "reports", "cpsim"])
def test_no_import_circle_inside_the_other_packages(package):
    """The same for each other package; between packages the layer rules above allow none."""
    graph = package_import_graph(ROOT, package)
    assert any(graph.values())  # the graph does see the imports
    assert import_cycles(graph) == []


def test_import_circle_hidden_in_a_function_is_found(tmp_path):
    """The import graph reads function-level and relative imports, so such a circle shows."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = package_import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]
