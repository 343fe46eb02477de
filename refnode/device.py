"""Where an experiment's arrays live: ``cpu`` (NumPy, the default) or ``gpu`` (CuPy).

Every command that trains takes ``--device cpu|gpu`` (:func:`refnode.experiments.
common_cli.add_device_option`). The rule is the same everywhere: the data and the
parameters move to the device once, with :func:`to_device`; training and evaluation run
there (refnode's array code asks :func:`refnode.backend.array_module` which library owns
its inputs); what is written (checkpoints, JSON records, figures) is made from host copies,
:func:`to_host`. A checkpoint therefore holds NumPy arrays whatever the device, and a run
started on the GPU resumes on the CPU and back.

A third device, ``strict``, is for the tests: :class:`refnode.strict.StrictArray`, NumPy
data behind CuPy's rules (no implicit conversion to NumPy, no host arrays mixed in, no
hidden synchronisation), so that the whole GPU path of a command runs on the CPU and fails
where CuPy would.

    >>> import numpy as np
    >>> from refnode.device import to_device, to_host
    >>> theta = {"W": np.ones((2, 2)), "step": 3}
    >>> on = to_device(theta, "strict")
    >>> type(on["W"]).__name__, on["step"]
    ('StrictArray', 3)
    >>> to_host(on)["W"].sum()
    np.float64(4.0)
"""

import numpy as np

from .backend import array_module, to_numpy
from .errors import InputError

#: The devices a user chooses from (``--device``); ``strict`` is accepted too, for tests.
DEVICES = ("cpu", "gpu")
TEST_DEVICES = ("strict",)


def check_device(name):
    """Check that device ``name`` can be used, before any work; returns ``name``.

    Raises
    ------
    InputError
        One line: an unknown name, or ``gpu`` without CuPy or without a CUDA device.
    """
    if name not in DEVICES + TEST_DEVICES:
        raise InputError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")
    if name == "gpu":
        _cupy()
    return name


def _cupy():
    """The ``cupy`` module, if it imports and sees a GPU; else an InputError."""
    try:
        import cupy
    except ImportError:
        raise InputError("--device gpu needs CuPy: pip install 'refnode[gpu]' (CUDA 12) or "
                         "'refnode[gpu-cuda13]' (CUDA 13); or use --device cpu") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:                 # no driver, or CuPy built for another CUDA
        raise InputError(f"--device gpu: CuPy cannot reach a GPU ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'}"
                         "); check the driver and the CuPy wheel's CUDA version, or use "
                         "--device cpu") from None
    if count < 1:
        raise InputError("--device gpu: CuPy sees no GPU; use --device cpu")
    return cupy


def _uploader(name):
    """host ndarray -> array on device ``name`` (None for the CPU: nothing moves)."""
    if name == "cpu":
        return None
    if name == "gpu":
        return _cupy().asarray
    if name == "strict":
        from .strict import StrictArray
        return StrictArray
    check_device(name)


def to_device(tree, name):
    """Copy the NumPy arrays of ``tree`` to device ``name``; other leaves stay as they are.

    Parameters
    ----------
    tree : array, or dicts/lists/tuples of arrays, numbers, str, None, Generators
    name : {"cpu", "gpu", "strict"}

    Returns
    -------
    tree
        The same structure. On ``cpu`` it is ``tree`` itself (no copy: the CPU path is
        unchanged); elsewhere each ``numpy.ndarray`` leaf is copied to the device, while
        Python numbers, NumPy scalars (counters, step numbers) and everything else stay.
    """
    upload = _uploader(name)
    if upload is None:
        return tree
    return _map_arrays(lambda x: upload(x) if type(x) is np.ndarray else x, tree)


def to_host(tree):
    """A copy of ``tree`` with every device array replaced by a NumPy array.

    NumPy arrays, numbers and other leaves are returned as they are (no copy).
    """
    return _map_arrays(lambda x: to_numpy(x) if _on_device(x) else x, tree)


def device_of(tree):
    """The device that owns the arrays of ``tree``: ``"cpu"``, ``"gpu"`` or ``"strict"``."""
    xp = array_module(tree)
    if xp is np:
        return "cpu"
    if xp.__name__ == "cupy":
        return "gpu"
    if xp.__name__ == "refnode.strict.namespace":
        return "strict"
    return "cpu"


def _on_device(x):
    module = type(x).__module__
    return module.split(".")[0] == "cupy" or module == "refnode.strict"


def _map_arrays(fn, tree):
    if isinstance(tree, dict):
        return {key: _map_arrays(fn, value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        return type(tree)(_map_arrays(fn, value) for value in tree)
    if hasattr(tree, "_fields"):                   # a namedtuple: rebuild it field by field
        return type(tree)(*(_map_arrays(fn, value) for value in tree))
    return fn(tree)
