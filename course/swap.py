"""A pytest plugin that grades a student's function with refnode's own tests.

    python -m pytest -p course.swap --swap TARGET=FILE:NAME [-m TOPIC] tests/...

``TARGET`` names the function in refnode, ``module:attribute`` (dots reach into a class:
``refnode.nn.dense:ConcatLinear.vjp``); ``FILE:NAME`` is the student's replacement. Before
any test is collected the plugin loads the student's file and puts NAME in TARGET's
place — also in every loaded ``refnode`` module that imported the same function by name,
so ``from .rk_step import rk_step`` sees the student's version too. ``--swap`` may be
given several times. A bad ``--swap`` is a one-line usage error; tracebacks default to
``--tb=short`` (the grading helpers hide their own frames).
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from refnode.errors import describe_call_error


def pytest_addoption(parser):
    parser.addoption("--swap", action="append", default=[], metavar="TARGET=FILE:NAME",
                     help="replace refnode's TARGET (module:attr.path) by NAME from FILE")


def load_from_file(path, name):
    """Attribute ``name`` of the Python file at ``path``, imported under a private name.

    Raises
    ------
    pytest.UsageError
        One line, when the file is missing, fails to import or lacks ``name``.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise pytest.UsageError(f"--swap: the student's file {path} does not exist "
                                "(FILE in TARGET=FILE:NAME is a path to a .py file)")
    spec = importlib.util.spec_from_file_location(f"_submission_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise pytest.UsageError(f"--swap: {describe_call_error(err, f'file {path}', 'it is Python')}") from None
    if not hasattr(module, name):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise pytest.UsageError(f"--swap: {path} defines no {name!r} (it defines {defined})")
    return getattr(module, name)


def swap(target, replacement):
    """Put ``replacement`` where ``target`` ("module:attr.path") is; returns the original.

    Raises
    ------
    pytest.UsageError
        One line, when the module does not import or has no such attribute.
    """
    module_name, _, attr_path = target.partition(":")
    try:
        owner = importlib.import_module(module_name)
    except ImportError as err:
        raise pytest.UsageError(f"--swap: cannot import {module_name!r} ({err}); TARGET is "
                                "module:attribute, e.g. refnode.nn.dense:ConcatLinear.vjp") from None
    *parents, leaf = attr_path.split(".")
    for name in parents:
        owner = attribute(owner, name, target)
    original = attribute(owner, leaf, target)
    setattr(owner, leaf, replacement)
    if not parents:                      # a module-level function: patch its importers too
        for name, module in list(sys.modules.items()):
            if name.startswith("refnode") and getattr(module, leaf, None) is original:
                setattr(module, leaf, replacement)
    return original


def attribute(owner, name, target):
    """``owner.name``; pytest.UsageError naming ``target`` if there is none."""
    if not hasattr(owner, name):
        raise pytest.UsageError(f"--swap: {getattr(owner, '__name__', owner)} has no attribute "
                                f"{name!r} (TARGET {target!r})")
    return getattr(owner, name)


def parse(spec):
    """(TARGET, FILE, NAME) from ``TARGET=FILE:NAME``; pytest.UsageError if malformed."""
    target, _, source = spec.partition("=")
    file, _, name = source.rpartition(":")
    if not (":" in target and file and name):
        raise pytest.UsageError(f"--swap expects TARGET=FILE:NAME, e.g. refnode.nn.dense:"
                                f"ConcatLinear.vjp=student.py:vjp; got {spec!r}")
    return target, file, name


def pytest_configure(config):
    swaps = [parse(spec) for spec in config.getoption("swap")]
    for target, file, name in swaps:
        swap(target, load_from_file(file, name))
    if swaps and config.option.tbstyle == "auto":       # a student reads the hint, not our source
        config.option.tbstyle = "short"
    if swaps:
        report_one_failure_per_test()


def report_one_failure_per_test():
    """Hypothesis reports only the first failure of a test (no exception groups)."""
    try:
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("course-swap", settings(settings.default, report_multiple_bugs=False))
    settings.load_profile("course-swap")
