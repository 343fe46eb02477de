"""Grading support for one assignment (copied as conftest.py into each assignment folder).

The fixture ``submission`` is the student's file ``student.py`` (or the file named by the
environment variable REFNODE_SUBMISSION; ``REFNODE_SUBMISSION=refnode`` grades the
reference solution: refnode's own functions, or the course's ``course/solutions/``). A failing test is reported by its hint alone: the
grader's message, or the exception the student's code raised with its line; no source
listings of the grading code.
"""

import importlib.util
import json
import os
import traceback
import types
from pathlib import Path

import pytest

from refnode.commands.course import reference_function
from refnode.errors import RefnodeError

HERE = Path(__file__).resolve().parent
#: {name in student.py: "module:qualified.name" in refnode}, written by ``refnode course build``.
FUNCTIONS = json.loads((HERE / "assignment.json").read_text(encoding="utf-8"))["blanks"]


def submission_path():
    choice = os.environ.get("REFNODE_SUBMISSION", "student.py")
    path = Path(choice)
    return path if path.is_absolute() else HERE / path


def load_submission():
    """The functions under test, as attributes of one namespace."""
    if os.environ.get("REFNODE_SUBMISSION") == "refnode":
        return types.SimpleNamespace(**{name: reference_function(target)
                                        for name, target in FUNCTIONS.items()})
    path = submission_path()
    if not path.is_file():
        raise pytest.UsageError(f"no submission at {path} (set REFNODE_SUBMISSION to a file)")
    spec = importlib.util.spec_from_file_location(f"submission_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise pytest.UsageError(f"{path} does not import: {describe(err)}") from None
    missing = [name for name in FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise pytest.UsageError(f"{path} must define {', '.join(missing)} (see the template)")
    return types.SimpleNamespace(**{name: getattr(module, name) for name in FUNCTIONS})


@pytest.fixture(scope="session")
def submission():
    return load_submission()


def describe(err):
    """'NotImplementedError at student.py line 12: ...' for an exception from the student's
    code: the submission, or an earlier assignment's student.py it uses (the capstone)."""
    own = [f for f in traceback.extract_tb(err.__traceback__)
           if Path(f.filename).name == "student.py"
           or Path(f.filename).resolve() == submission_path().resolve()]
    if not own:
        return f"{type(err).__name__}: {err}"
    path = Path(own[-1].filename).resolve()
    name = path.name if path == submission_path().resolve() else f"../{path.parent.name}/{path.name}"
    return f"{type(err).__name__} at {name} line {own[-1].lineno}: {err}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Replace a failing test's traceback by its hint (the grader's message), or by the
    exception the student's code raised and where."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and call.excinfo is not None:
        err = call.excinfo.value
        own = isinstance(err, (AssertionError, RefnodeError))      # a message written for you
        text = str(err) if own else f"your code raised {describe(err)}"
        report.longrepr = text.strip() or "assertion failed"
    if report.when == "call" or report.failed:
        RESULTS[item.name] = "" if report.passed else str(report.longrepr)


#: {test: "" or its hint}, written to $REFNODE_GRADE_RESULTS for ``refnode course grade``.
RESULTS = {}


def pytest_sessionfinish(session):
    path = os.environ.get("REFNODE_GRADE_RESULTS")
    if path:
        Path(path).write_text(json.dumps(RESULTS, indent=1), encoding="utf-8")
