"""A pytest plugin that grades a student's function with refnode's own tests.

    python -m pytest -p course.swap --swap TARGET=FILE:NAME [-m TOPIC] tests/...

``TARGET`` names the function in refnode, ``module:attribute`` (dots reach into a class:
``refnode.nn.dense:ConcatLinear.vjp``); ``FILE:NAME`` is the student's replacement. Before
any test is collected the plugin loads the student's file and puts NAME in TARGET's
place — also in every loaded ``refnode`` module that imported the same function by name,
so ``from .rk_step import rk_step`` sees the student's version too. ``--swap`` may be
given several times.
"""

import importlib
import importlib.util
import sys
from pathlib import Path


def pytest_addoption(parser):
    parser.addoption("--swap", action="append", default=[], metavar="TARGET=FILE:NAME",
                     help="replace refnode's TARGET (module:attr.path) by NAME from FILE")


def load_from_file(path, name):
    """Attribute ``name`` of the Python file at ``path``, imported under a private name."""
    path = Path(path).resolve()
    spec = importlib.util.spec_from_file_location(f"_submission_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def swap(target, replacement):
    """Put ``replacement`` where ``target`` ("module:attr.path") is; returns the original."""
    module_name, _, attr_path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, leaf = attr_path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    original = getattr(owner, leaf)
    setattr(owner, leaf, replacement)
    if not parents:                      # a module-level function: patch its importers too
        for name, module in list(sys.modules.items()):
            if name.startswith("refnode") and getattr(module, leaf, None) is original:
                setattr(module, leaf, replacement)
    return original


def pytest_configure(config):
    for spec in config.getoption("swap"):
        target, _, source = spec.partition("=")
        file, _, name = source.rpartition(":")
        if not (target and file and name):
            raise ValueError(f"--swap expects TARGET=FILE:NAME, got {spec!r}")
        swap(target, load_from_file(file, name))
