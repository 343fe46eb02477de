"""Timing helpers for the benchmarks: best-of-N wall time in one process, markdown tables.

Every ratio a benchmark prints is measured in the same process, on the same machine, one
right after the other, so that it does not depend on the machine's speed.
"""

import time

#: Repeats of each timing; the best (smallest) is reported, as with ``timeit``: the
#: minimum is the run least disturbed by the rest of the machine.
DEFAULT_REPEATS = 5


def best_time(fn, repeats=DEFAULT_REPEATS, number=1):
    """The smallest wall time of ``number`` calls of ``fn()``, over ``repeats`` tries, per call.

    Returns
    -------
    seconds : float
    result : object
        What the last call returned (so the caller can read NFE and check answers).
    """
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            result = fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best, result


def page_faults(fn, repeats=DEFAULT_REPEATS):
    """Minor page faults per call of ``fn()`` (the kernel mapping fresh memory pages to
    the process), the mean over ``repeats`` calls; None where ``resource`` is missing.

    NumPy's large temporaries come from the C allocator, which may hand freed memory back
    to the system and fault it in again on the next call: a cost per call that depends
    on what ran earlier in the process.
    """
    try:
        import resource
    except ImportError:                                  # not on Windows
        return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats


def markdown_table(headers, rows):
    """A GitHub markdown table from a header list and rows of already-formatted cells."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_seconds(seconds):
    """Seconds in ms with three significant digits."""
    return f"{seconds * 1e3:.3g} ms"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def gpu_name(cupy):
    """The name of CUDA device 0 as a str (CuPy gives bytes or str, by version)."""
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
