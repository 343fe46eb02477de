"""Shared test configuration: hypothesis profiles and array backends.

Profiles (select with ``HYPOTHESIS_PROFILE=thorough`` or pytest's
``--hypothesis-profile``): ``ci`` (default, 20 examples per property, what .ci/run
uses) and ``thorough`` (300, for local runs before a release). ``ci`` is derandomized:
every run draws the same examples, so the default run passes or fails the same way on
every machine and every day; ``thorough`` draws new ones each run, to find what ``ci``
does not.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- no temporary directories left behind -----------------------------------------------------
# The run gets a private temporary directory (TMPDIR, inherited by the commands and tutorials
# the tests start), so that what other processes put in /tmp meanwhile is not counted. A
# ``refnode-*`` entry left in it at the end (a figure directory, a docs build) fails the run.
# pytest's own tmp_path directories stay where they were (PYTEST_DEBUG_TEMPROOT).

LEFTOVER_PATTERN = "refnode-*"


def leftovers(directory):
    """Names of the ``refnode-*`` entries in ``directory``, sorted."""
    return sorted(p.name for p in Path(directory).glob(LEFTOVER_PATTERN))


def pytest_configure(config):
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    private = tempfile.mkdtemp(prefix="pytest-tmpdir-")
    config._refnode_tmpdir = (private, os.environ.get("TMPDIR"), tempfile.tempdir)
    os.environ["TMPDIR"] = tempfile.tempdir = private


def pytest_sessionfinish(session, exitstatus):
    private = session.config._refnode_tmpdir[0]
    left = leftovers(private)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"the tests left temporary directories behind: {', '.join(left)} "
                   "(a test or a command it ran made them and did not remove them)")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"ERROR: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    private, tmpdir, tempdir = config._refnode_tmpdir
    shutil.rmtree(private, ignore_errors=True)
    if tmpdir is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = tmpdir
    tempfile.tempdir = tempdir
