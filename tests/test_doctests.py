"""The examples in docstrings are run: they must stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cpsim
import model
import reports
import simulations

MODULES = sorted(
    info.name
    for package in (model, simulations, reports, cpsim)
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
    if info.name != "cpsim.__main__"  # importing it runs the command
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
