"""One call on a GPU machine: the GPU tests and the GPU benchmarks, with a report.

    bash benchmarks/gpu_check.sh [OUT_DIR]        # or: python benchmarks/gpu_check.py [OUT_DIR]

Runs, one after the other, each as a subprocess with the checkout on ``PYTHONPATH``:

1. ``pytest -m gpu`` on the test files that have GPU tests (CuPy against NumPy, every
   command's ``--device gpu`` run, the training step on CuPy against PyTorch on CUDA);
2. ``benchmarks/bench_gpu.py --device gpu`` at batches 1024 and 65536, float32, best of 2
   (the full sweep, four batches and both dtypes, is ``python benchmarks/bench_gpu.py``:
   its NumPy runs at the large batches alone take minutes);
3. ``benchmarks/bench_training.py --device gpu``: the Table 1 models' training step,
   batch 128, float32, best of 3;
4. ``benchmarks/grad_precision.py``: how far each float32 gradient (NumPy, CuPy, PyTorch
   with and without TF32) lies from refnode's float64 one.

The whole check is held under :data:`BUDGET_S` (4 min 50 s): each step gets at most its own
cap (:data:`STEPS`) and what is left of the budget, and a step that runs out is stopped and
reported as timed out. The report goes to ``OUT_DIR`` (default a run directory,
``runs/gpu-check/<date-time>`` under the working directory, never into the checkout):
``gpu_check.md`` (the device, each step's status and time, the test counts, the benchmark
tables and their met/MISSED target lines) and ``gpu_check.json`` (the same, plus the
benchmarks' own JSON); each step's full output is kept beside them (``<step>.log``).

Without CuPy, a GPU, or the packages the steps import (refnode's autograd and matplotlib,
pytest and hypothesis for the tests, torch with CUDA and torchdiffeq to compare against),
it stops at once with one line on stderr and exit status 2, writing nothing. Otherwise
the exit status is 0 when every step ran and passed, 1 when one failed or timed out (a
MISSED target is a measurement, not a failure).
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))          # common.py, bench_training.py
#: The whole check's wall-time budget in seconds (under five minutes).
BUDGET_S = 290.0
#: Python packages the steps import (checked before any work).
REQUIRED = ("numpy", "autograd", "matplotlib", "pytest", "hypothesis", "torch", "torchdiffeq")
#: The test files that hold ``gpu`` tests (their other tests are deselected by ``-m gpu``).
GPU_TEST_FILES = ("tests/test_backends.py", "tests/test_device.py", "tests/test_bench.py")


def steps(out):
    """The check's steps: (name, command, cap in seconds, JSON the step writes or None)."""
    python = sys.executable
    return [
        ("pytest", [python, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
                    *GPU_TEST_FILES, "--junitxml", str(out / "pytest.xml")], 150.0, None),
        ("bench_gpu", [python, "benchmarks/bench_gpu.py", "--device", "gpu", "--batches",
                       "1024", "65536", "--dtypes", "float32", "--repeats", "2", "--json",
                       str(out / "bench_gpu.json")], 100.0, out / "bench_gpu.json"),
        ("bench_training", [python, "benchmarks/bench_training.py", "--device", "gpu",
                            "--repeats", "3", "--json", str(out / "bench_training.json")],
         100.0, out / "bench_training.json"),
        ("grad_precision", [python, "benchmarks/grad_precision.py", "--json",
                            str(out / "grad_precision.json")], 60.0, out / "grad_precision.json"),
    ]


# --- before any work: is there a GPU, and what the steps need ---------------------------------


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):          # a module set to None, a broken package
        return False


def unavailable():
    """Why the check cannot run here (one line), or None. Imports nothing heavy first."""
    if not _importable("cupy"):
        return ("no CuPy here, so no GPU to check: on a machine with an NVIDIA GPU, pip "
                "install 'refnode[gpu-cuda13]' (CUDA 13) or 'refnode[gpu]' (CUDA 12)")
    missing = [name for name in REQUIRED if not _importable(name)]
    if missing:
        return (f"missing Python package(s) {', '.join(missing)}: pip install "
                f"{' '.join(missing)} (without a network, carry their wheels and install "
                "them with pip install --no-index --find-links DIR)")
    from bench_training import gpu_problem           # CuPy with a GPU, torch with CUDA
    return gpu_problem()


def device_info():
    """The GPU and the libraries, for the report's heading."""
    import cupy
    import torch
    from common import gpu_name
    props = cupy.cuda.runtime.getDeviceProperties(0)
    return {"gpu": gpu_name(cupy), "gpu_memory_gib": round(props["totalGlobalMem"] / 2 ** 30, 1),
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cupy": cupy.__version__, "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "python": sys.version.split()[0],
            "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --- running the steps -------------------------------------------------------------------------


def run_step(name, command, timeout, log_path):
    """Run ``command`` in the checkout; its output goes to ``log_path``.

    Returns ``{"name", "command", "returncode", "seconds", "timed_out", "targets",
    "tail"}``: ``targets`` are the output's ``target ...`` lines (the benchmarks'
    met/MISSED verdicts), ``tail`` its last lines.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            returncode = subprocess.run(command, cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, timeout=timeout).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
    output = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    return {"name": name, "command": " ".join(command[1:]), "returncode": returncode,
            "seconds": round(time.perf_counter() - start, 1), "timed_out": timed_out,
            "targets": [line for line in output if line.startswith("target ")],
            "tail": output[-15:]}


def pytest_counts(junit_path):
    """{"tests", "failures", "errors", "skipped", "passed"} from pytest's JUnit XML, or
    None when there is none (pytest did not get that far)."""
    try:
        root = ElementTree.parse(junit_path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites)
              for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _finite(value):
    """``value`` with NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def read_json(path):
    """A step's JSON results, or None when the step wrote none."""
    try:
        return _finite(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def passed(step):
    """Whether a step ran to the end and succeeded (pytest: no failure, at least one ran)."""
    if step["timed_out"] or step["returncode"] != 0:
        return False
    counts = step.get("counts")
    return counts is None or counts["passed"] > 0


# --- the report ----------------------------------------------------------------------------------


def _status(step):
    if step["timed_out"]:
        return f"TIMED OUT ({step['seconds']:.0f} s)"
    return "passed" if passed(step) else f"FAILED (exit status {step['returncode']})"


def _ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f} ms"


def _ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def _table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _bench_gpu_lines(results):
    rows = []
    for r in results:
        times, ratios = r.get("times", {}), r.get("ratios", {})
        rows.append([r["batch"], r["dtype"]] + [_ms(times.get(lib, {}).get(kind))
                                                for kind in ("fwd", "adj")
                                                for lib in ("cupy", "torch", "numpy")]
                    + [_ratio(ratios.get(key)) for key in ("cupy/torch fwd", "cupy/torch adj",
                                                           "numpy/cupy fwd", "numpy/cupy adj")])
    return _table(["batch", "dtype", "cupy fwd", "torch fwd", "numpy fwd", "cupy adj",
                   "torch adj", "numpy adj", "cupy/torch fwd", "cupy/torch adj",
                   "numpy/cupy fwd", "numpy/cupy adj"], rows)


def _bench_training_lines(rows):
    return _table(["model", "refnode (CuPy)", "PyTorch (CUDA)", "ratio", "NFE refnode fwd/bwd",
                   "grad diff"],
                  [[r["model"], _ms(r["refnode_s"]), _ms(r["torch_s"]), _ratio(r["ratio"]),
                    "/".join(str(n) for n in r["nfe_refnode"]),
                    "n/a" if r.get("grad_rel_diff") is None else f"{r['grad_rel_diff']:.1e}"]
                   for r in rows])


def _grad_precision_lines(rows):
    return _table(["model", "computation", "NFE", "from float64", "from numpy float32"],
                  [[r["model"], r["run"], "/".join(str(n) for n in r["nfe"]),
                    f"{r['distance']:.1e}", f"{r['distance_float32']:.1e}"] for r in rows])


def build_report(info, step_results, seconds):
    """The report as (markdown text, JSON-ready dict).

    Parameters
    ----------
    info : dict
        :func:`device_info`.
    step_results : list of dict
        :func:`run_step`'s dicts, with ``counts`` (pytest) or ``results`` (a benchmark's
        JSON) added where there are any.
    seconds : float
        The whole check's wall time.
    """
    ok = all(passed(s) for s in step_results)
    md = [f"# GPU check: {info['gpu']}", "",
          f"{info['gpu']} ({info['gpu_memory_gib']} GiB), CUDA runtime {info['cuda_runtime']}, "
          f"CuPy {info['cupy']}, torch {info['torch']} (CUDA {info['torch_cuda']}), Python "
          f"{info['python']}; commit {info['commit']}, {info['date']}; "
          f"{seconds:.0f} s in all: **{'all steps passed' if ok else 'a step FAILED'}**.", ""]
    md += _table(["step", "status", "seconds", "command"],
                 [[s["name"], _status(s), f"{s['seconds']:.0f}", f"`{s['command']}`"]
                  for s in step_results])
    for s in step_results:
        md += ["", f"## {s['name']}", ""]
        if s.get("counts"):
            c = s["counts"]
            md.append(f"{c['passed']} passed, {c['failures']} failed, {c['errors']} errors, "
                      f"{c['skipped']} skipped (of {c['tests']} GPU tests).")
        if s["name"] == "bench_gpu" and s.get("results"):
            md += _bench_gpu_lines(s["results"])
        if s["name"] == "bench_training" and s.get("results"):
            md += _bench_training_lines(s["results"])
        if s["name"] == "grad_precision" and s.get("results"):
            md += _grad_precision_lines(s["results"])
        if s["targets"]:
            md += [""] + [f"- {line}" for line in s["targets"]]
        if not passed(s):
            md += ["", "Last lines of its output:", "", "```"] + s["tail"] + ["```"]
    data = {"device": info, "seconds": round(seconds, 1), "all_passed": ok,
            "steps": step_results}
    return "\n".join(md) + "\n", data


def write_report(out, markdown, data):
    """``gpu_check.md`` and ``gpu_check.json`` in ``out``, each written atomically."""
    from refnode.experiments.common import write_json
    from refnode.files import atomic_write
    md_path = atomic_write(out / "gpu_check.md", lambda f: f.write(markdown), "w")
    return md_path, write_json(out / "gpu_check.json", data)


# --- the command -------------------------------------------------------------------------------


def default_out():
    return Path("runs") / "gpu-check" / time.strftime("%Y%m%d-%H%M%S")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="directory for the report (default runs/gpu-check/<date-time>)")
    args = parser.parse_args(argv)
    problem = unavailable()
    if problem:
        print(f"gpu_check: {problem}", file=sys.stderr)
        return 2
    out = (args.out if args.out is not None else default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    info = device_info()
    print(f"GPU check on {info['gpu']}: report in {out}", flush=True)
    start, results = time.perf_counter(), []
    for name, command, cap, json_path in steps(out):
        left = BUDGET_S - (time.perf_counter() - start)
        step = run_step(name, command, max(1.0, min(cap, left)), out / f"{name}.log")
        if name == "pytest":
            step["counts"] = pytest_counts(out / "pytest.xml")
        if json_path is not None:
            step["results"] = read_json(json_path)
        results.append(step)
        print(f"{name}: {_status(step)}, {step['seconds']:.0f} s", flush=True)
    markdown, data = build_report(info, results, time.perf_counter() - start)
    for path in write_report(out, markdown, data):
        print(f"wrote {path}")
    return 0 if data["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
