"""What every experiment's command line shares: checked numbers, checked output paths.

The rule for commands: every number and every output path is checked before any work, and
a bad one ends the command with one clear line and exit status 2.

* Numbers: use the argparse types below (``type=positive_int`` and so on). argparse turns
  their errors into ``refnode ...: error: argument --epochs: ...`` and exit 2.
* Paths: give every path option ``type=path_text`` (a ``str``) or ``type=path_object`` (a
  :class:`~pathlib.Path`): an empty value or one with a NUL byte is refused at parsing
  (``""`` would otherwise read as "not given" and silently become the default, or as ``.``).
  Test an optional path with ``is not None``, never with ``or``.
* Output paths: call :func:`check_output_dir` / :func:`check_output_file` at the start of
  ``run(args)``. They raise :class:`~refnode.errors.InputError`, which ``refnode`` prints
  as one line with exit 2 (:func:`refnode.cli.main`).
* The device: :func:`add_device_option` gives a command ``--device cpu|gpu`` (default cpu)
  and :func:`check_device_option` checks it at the start of ``run(args)`` (CuPy and a GPU
  present, else one line and exit 2); :mod:`refnode.device` moves the arrays.
* Where results go: without ``--out`` a command writes into its run directory
  (:func:`run_directory`, under ``runs/``), never over the committed ``figures/``; only an
  explicit ``--out figures`` replaces those.
"""

import argparse
import math
import os
import tempfile
from pathlib import Path

from .. import device
from ..errors import InputError

#: Root of the run directories, relative to the working directory (git-ignored).
RUNS_ROOT = "runs"
#: The largest integer an option takes: what NumPy's int64 holds (seeds, sizes, counts).
MAX_INT = 2 ** 63 - 1
#: The most seeds one command runs (each seed is a whole training run).
MAX_SEEDS = 1000


# --- numbers (argparse types) -------------------------------------------------------------


def _number(text, convert, kind):
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def _integer(text, low, high, kind):
    value = _number(text, int, kind)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: an integer from 1 to :data:`MAX_INT`."""
    return _integer(text, 1, MAX_INT, "a positive integer up to 2**63 - 1")


def nonnegative_int(text):
    """argparse type: an integer from 0 to :data:`MAX_INT` (seeds)."""
    return _integer(text, 0, MAX_INT, "an integer >= 0 up to 2**63 - 1")


def seed_count(text):
    """argparse type: a number of seeds, 1 to :data:`MAX_SEEDS`."""
    return _integer(text, 1, MAX_SEEDS, f"a number of seeds from 1 to {MAX_SEEDS}")


def positive_float(text):
    """argparse type: a finite number > 0 (epochs, learning rates)."""
    value = _number(text, float, "a finite number > 0")
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


# --- the device ---------------------------------------------------------------------------


def _device_name(text):
    if text not in device.DEVICES + device.TEST_DEVICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(device.DEVICES)}, "
                                         f"got {text!r}")
    return text


def add_device_option(parser, what="training and evaluation run there"):
    """``--device cpu|gpu`` (default cpu): where the data and parameters live.

    ``strict`` (:mod:`refnode.strict`, CuPy's rules on the CPU) is accepted too but not
    advertised: the tests run each command's GPU path with it.
    """
    parser.add_argument("--device", type=_device_name, default="cpu", metavar="{cpu,gpu}",
                        help=f"cpu (NumPy, the default) or gpu (CuPy; pip install "
                        f"'refnode[gpu]'): the data and parameters move there once, {what}; "
                        "checkpoints and records are written from host copies")


def check_device_option(args):
    """Check ``args.device`` before any work (an InputError, exit 2, if the GPU is missing)."""
    return device.check_device(args.device)


# --- output paths -------------------------------------------------------------------------


def _first_existing(path):
    """The nearest existing directory at or above ``path``."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _path_problem(path):
    """Why ``path`` names no file (None if it may): empty, or a NUL byte the OS refuses."""
    if not path or "\0" in path:
        return (f"{path!r} is not a usable path (empty, or it contains a NUL byte); give a "
                "directory or file name")
    return None


def _check_path_text(path, flag):
    problem = _path_problem(path)
    if problem:
        raise InputError(f"{flag} {problem}")


def path_text(text):
    """argparse type: a path as ``str``; an empty one or one with a NUL byte is refused."""
    problem = _path_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def path_object(text):
    """argparse type: a path as :class:`~pathlib.Path` (``Path("")`` would be ``.``)."""
    return Path(path_text(text))


def _check_writable_dir(directory, flag, given):
    existing = _first_existing(directory)
    if not os.path.isdir(existing):
        raise InputError(f"{flag} {given}: {existing!r} is a file, not a directory; "
                         "choose another path")
    if existing != os.path.abspath(directory):
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as err:
            raise InputError(f"{flag} {given}: cannot create {directory!r} ({err.strerror}); "
                             "choose a writable path") from None
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise InputError(f"{flag} {given}: cannot write in {directory!r} ({err.strerror}); "
                         "choose a writable path") from None


def check_output_dir(path, flag):
    """Create the directory ``path`` if needed and check that a file can be written in it.

    Parameters
    ----------
    path : str
        e.g. the value of ``--out`` or ``--run-dir``.
    flag : str
        The option's name, for the message (``"--out"``).

    Raises
    ------
    InputError
        If ``path`` is a file, cannot be created, or is not writable.
    """
    _check_path_text(path, flag)
    _check_writable_dir(path, flag, path)
    return path


def check_output_file(path, flag):
    """Check that the file ``path`` (e.g. ``--json``) can be written; creates its directory.

    Raises
    ------
    InputError
        If ``path`` is a directory or its directory cannot be created or written.
    """
    _check_path_text(path, flag)
    if os.path.isdir(path):
        raise InputError(f"{flag} {path}: is a directory; give a file name such as "
                         f"{os.path.join(path, 'results.json')!r}")
    _check_writable_dir(os.path.dirname(os.path.abspath(path)), flag, path)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path}: the file exists and is not writable")
    return path


def run_directory(name, quick=False):
    """The run directory of experiment ``name``: ``runs/NAME``, or ``runs/NAME-quick``.

    Quick runs get their own directory so they never replace a full run's files.
    """
    return os.path.join(RUNS_ROOT, f"{name}-quick" if quick else name)
