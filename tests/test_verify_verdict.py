"""``refnode verify`` cannot be talked into PASS.

For every way a result can be malformed, incomplete or misleading the verdict is FAILED
(exit status 1) or an input error (exit status 2, one line) — never PASSED. Whatever the
verified callable does besides returning its results (exit, interrupt itself, raise,
print) cannot become verify's verdict or exit status.
"""

import argparse
import copy
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from refnode import cli, verify
from refnode.commands import verify as verify_command
from refnode.reference.golden_files import MAX_JSON_BYTES, load_golden

pytestmark = pytest.mark.verify

ROOT = Path(__file__).resolve().parent.parent
RTOL = "1e-7"


def golden_results(name):
    """The golden values of ``name`` as a results entry (passes at any rtol)."""
    golden = load_golden(name)
    return {key: copy.deepcopy(golden[key]) for key in ("states", "gradients", "extras")}


def base_document():
    """Results for decay (D = 3, no batch) and mlp (a batch of 3, four parameters): PASSES."""
    return {"problems": {"decay": golden_results("decay"), "mlp": golden_results("mlp")}}


def verdict(tmp_path, capsys, text, *flags):
    """(exit status, stdout) of ``refnode verify --results`` on a file holding ``text``."""
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    code = cli.main(["verify", "--results", str(path), "--rtol", RTOL, *flags])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def edit(change):
    """A mutation of the base document: ``change(document)`` edits it in place."""
    def mutate():
        document = base_document()
        change(document)
        return json.dumps(document, allow_nan=True)
    return mutate


def text(raw):
    return lambda: raw


def setter(*path_and_value):
    *path, value = path_and_value

    def change(document):
        node = document["problems"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
    return change


def deleter(*path):
    def change(document):
        node = document["problems"]
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def scaled(factor):
    return lambda value: (np.asarray(value) * factor).tolist()


DECAY = json.dumps(golden_results("decay"))

#: Every way a results file can be wrong, incomplete or misleading.
MALFORMED = {
    # nothing, or nothing that can be judged
    "empty object": text("{}"),
    "empty problems": text('{"problems": {}}'),
    "empty list": text("[]"),
    "null": text("null"),
    "a number": text("5"),
    "the string PASSED": text('"PASSED"'),
    "empty file": text(""),
    "problems is null": text('{"problems": null}'),
    "problems is a list": text('{"problems": [%s]}' % DECAY),
    "a problem is a number": edit(setter("decay", 5)),
    "a problem is a list": edit(setter("decay", [1, 2])),
    "relu only (spread, no verdict)": text(json.dumps({"problems": {
        "relu": golden_results("relu")}})),
    "relu plus a problem declaring everything unsupported": text(json.dumps({"problems": {
        "relu": golden_results("relu"),
        "decay": {"unsupported": {g: "none" for g in ("states", "z0", "theta", "t", "extras")}}}})),
    "every gradient declared unsupported": edit(lambda d: [
        p.update(gradients={}, unsupported={"z0": "n", "theta": "n", "t": "n"})
        for p in d["problems"].values()]),
    "everything declared unsupported": edit(lambda d: [
        p.update(unsupported={g: "n" for g in ("states", "z0", "theta", "t")})
        for p in d["problems"].values()]),
    # missing quantities
    "no states": edit(deleter("decay", "states")),
    "no gradients": edit(deleter("mlp", "gradients")),
    "no dL/dz0": edit(deleter("mlp", "gradients", "z0")),
    "no dL/dtheta": edit(deleter("mlp", "gradients", "theta")),
    "one parameter missing": edit(deleter("mlp", "gradients", "theta", "W1")),
    "no dL/dt": edit(deleter("decay", "gradients", "t")),
    "empty theta": edit(setter("mlp", "gradients", "theta", {})),
    "empty gradients": edit(setter("decay", "gradients", {})),
    "states null": edit(setter("decay", "states", None)),
    "dL/dz0 null": edit(setter("mlp", "gradients", "z0", None)),
    "a typo for states": edit(lambda d: d["problems"]["decay"].update(
        state=d["problems"]["decay"].pop("states"))),
    # wrong shapes
    "states flattened": edit(setter("mlp", "states", lambda v: np.ravel(v).tolist())),
    "states with an extra axis": edit(setter("decay", "states", lambda v: [v])),
    "states one time short": edit(setter("mlp", "states", lambda v: v[1:])),
    "states one time long": edit(setter("mlp", "states", lambda v: v + v[-1:])),
    "states empty": edit(setter("decay", "states", [])),
    "dL/dz0 of one sample for a batch": edit(setter("mlp", "gradients", "z0", lambda v: v[0])),
    "dL/dW1 per sample (no batch sum)": edit(setter("mlp", "gradients", "theta", "W1",
                                                    lambda v: [v, v, v])),
    "dL/dW1 transposed": edit(setter("mlp", "gradients", "theta", "W1",
                                     lambda v: np.transpose(v).tolist())),
    "dL/dt one short": edit(setter("decay", "gradients", "t", lambda v: v[1:])),
    "dL/dt one long": edit(setter("decay", "gradients", "t", lambda v: v + [0.0])),
    "dL/dt a scalar": edit(setter("decay", "gradients", "t", 1.0)),
    "dL/dk an array for a scalar": edit(setter("decay", "gradients", "theta", "k",
                                               lambda v: [v, v])),
    # values that are not finite
    "NaN in the states": edit(setter("decay", "states", lambda v: [[float("nan")] * 3] + v[1:])),
    "all states NaN": edit(setter("mlp", "states", lambda v: np.full(np.shape(v), np.nan)
                                  .tolist())),
    "inf in a gradient": edit(setter("mlp", "gradients", "theta", "b2", [float("inf"), 0.0])),
    "-inf in dL/dt": edit(setter("decay", "gradients", "t", lambda v: [-float("inf")] + v[1:])),
    "1e999 (inf) in the states": text(json.dumps(base_document()).replace(
        json.dumps(golden_results("decay")["states"][0][0]), "1e999", 1)),
    # wrong types
    "strings for numbers": edit(setter("decay", "gradients", "z0", lambda v: [str(x) for x in v])),
    "states a dict": edit(setter("decay", "states", lambda v: {"z": v})),
    "gradients a list": edit(setter("decay", "gradients", lambda v: [v["z0"], v["theta"], v["t"]])),
    "theta a list": edit(setter("mlp", "gradients", "theta", lambda v: list(v.values()))),
    "theta a number": edit(setter("decay", "gradients", "theta", 1.0)),
    "a string inside an array": edit(setter("mlp", "gradients", "z0", lambda v: v[:-1] + ["x"])),
    "ragged": edit(setter("mlp", "states", lambda v: v[:1] + [v[1][:1]] + v[2:])),
    "booleans": edit(setter("decay", "gradients", "z0", [True, False, True])),
    "nested too deep": edit(setter("decay", "gradients", "z0", lambda v: [[[x]] for x in v])),
    "unsupported a list": edit(setter("decay", "unsupported", ["t"])),
    "unsupported names an unknown group": edit(setter("decay", "unsupported", {"gradient": "n"})),
    "a 5000-digit integer": text('{"problems": {"decay": {"states": [' + "7" * 5000 + "]}}}"),
    # extra or unknown
    "an unknown problem": edit(lambda d: d["problems"].update(lorenz=d["problems"]["decay"])),
    "only an unknown problem": text('{"problems": {"lorenz": %s}}' % DECAY),
    "an unknown parameter": edit(setter("mlp", "gradients", "theta", "W3", [0.0])),
    "a golden document with an unknown name": text(json.dumps(dict(golden_results("decay"),
                                                                   name="lorenz"))),
    "a golden document without a name": text(DECAY),
    "a list with a name that is not a string": text(json.dumps([dict(golden_results("decay"),
                                                                     name=["decay"])])),
    # duplicates: garbage first, correct second
    "a problem given twice": text('{"problems": {"decay": {"states": [[9]]}, "decay": %s}}'
                                  % DECAY),
    "the problems key given twice": text('{"problems": {"decay": {"states": 1}}, '
                                         '"problems": {"decay": %s}}' % DECAY),
    "a parameter given twice": text(DECAY.replace('"theta": {', '"theta": {"k": 99.0, ', 1)
                                    .join(['{"problems": {"decay": ', "}}"])),
    "a golden document listed twice": text(json.dumps([dict(golden_results("decay"), name="decay",
                                                            states=[[0.0] * 3] * 4),
                                                       dict(golden_results("decay"), name="decay")])),
    # wrong numbers (the rule itself)
    "dL/dt0 sign flipped": edit(setter("decay", "gradients", "t",
                                       lambda v: [-v[0]] + v[1:])),
    "dL/dtheta a batch mean": edit(setter("mlp", "gradients", "theta", "W1", scaled(1 / 3))),
    "states off by 1e-3": edit(setter("mlp", "states", scaled(1 + 1e-3))),
    "gradient off by 1e-3": edit(setter("decay", "gradients", "z0", scaled(1 + 1e-3))),
    "states shifted by one time": edit(setter("decay", "states", lambda v: v[:1] + v[:-1])),
    "all zero gradients": edit(setter("mlp", "gradients", "z0", scaled(0.0))),
}


def test_the_unmutated_document_passes(tmp_path, capsys):
    """The family below is meaningful: its starting point is a PASS."""
    code, out = verdict(tmp_path, capsys, json.dumps(base_document()))
    assert code == 0 and "PASSED" in out, out


@pytest.mark.parametrize("mutation", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_or_misleading_result_never_passes(mutation, tmp_path, capsys):
    code, out = verdict(tmp_path, capsys, MALFORMED[mutation]())
    assert code in (1, 2), out
    assert "PASSED" not in out and "Traceback" not in out
    if code == 2:
        assert len(out.strip().splitlines()) == 1, out
    else:
        assert out.strip().splitlines()[-1].startswith("FAILED"), out


def test_states_only_passes_only_when_asked_for(tmp_path, capsys):
    """A run that verifies no gradient said 'PASSED: 8 of 8' with exit 0; now it fails
    unless --states-only asks for the states alone."""
    document = base_document()
    for entry in document["problems"].values():
        entry.update(gradients={}, unsupported={"z0": "n", "theta": "n", "t": "n"})
    code, out = verdict(tmp_path, capsys, json.dumps(document))
    assert code == 1 and "FAILED: no gradient was verified" in out and "--states-only" in out
    code, out = verdict(tmp_path, capsys, json.dumps(document), "--states-only")
    assert code == 0 and "PASSED" in out and "--states-only: the gradients were not compared" in out
    document["problems"]["decay"]["states"][2][0] += 1.0
    code, out = verdict(tmp_path, capsys, json.dumps(document), "--states-only")
    assert code == 1 and "FAIL decay: state" in out


def test_a_spread_alone_is_not_a_pass():
    report = verify.verify_results({"relu": golden_results("relu")}, 1e-7)
    assert not report.passed and report.verified == []


# --- files that are not results: one line, exit 2, before reading them whole -------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_an_endless_file_is_refused_after_a_capped_read(device, capsys):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    assert cli.main(["verify", "--results", device]) == 2
    out = capsys.readouterr().err
    assert f"larger than {MAX_JSON_BYTES // 2**20} MiB" in out
    assert len(out.strip().splitlines()) == 1


# --- the verified callable cannot decide the verdict -------------------------------------

@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write ``name.py`` into a fresh current directory; the import is undone afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    names = []

    def write(name, source):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name
    yield write
    for name in names:
        sys.modules.pop(name, None)


CALLABLES = {
    "sys.exit(0)": ("import sys\ndef solve(problem):\n    sys.exit(0)\n",
                    "called sys.exit(0) while solving problem 'decay'"),
    "sys.exit() after a good problem": (
        "import sys\nfrom refnode.verify import refnode_adjoint\n"
        "def solve(problem):\n    if problem['name'] == 'spiral':\n        sys.exit()\n"
        "    return refnode_adjoint(problem)\n",
        "called sys.exit(None) while solving problem 'spiral'"),
    "raises KeyboardInterrupt itself": (
        "def solve(problem):\n    raise KeyboardInterrupt\n",
        "raised KeyboardInterrupt itself (no Ctrl-C was received) while solving problem 'decay'"),
    "raises": ("def solve(problem):\n    return 1 / 0\n",
               "raised ZeroDivisionError while solving problem 'decay'"),
    "a torch-like tensor that requires grad": (
        "from refnode.verify import refnode_adjoint\n"
        "class Tensor:\n    def __array__(self, *args, **kwargs):\n"
        "        raise RuntimeError(\"Can't call numpy() on Tensor that requires grad. \"\n"
        "                           'Use tensor.detach().numpy() instead.')\n"
        "def solve(problem):\n    out = refnode_adjoint(problem)\n"
        "    out['gradients']['z0'] = Tensor()\n    return out\n",
        "decay: dL/dz0: converting it to a NumPy array raised RuntimeError"),
    "an __array__ that raises": (
        "from refnode.verify import refnode_adjoint\n"
        "class Odd:\n    def __array__(self, *args, **kwargs):\n        raise OSError('gone')\n"
        "def solve(problem):\n    out = refnode_adjoint(problem)\n"
        "    out['states'] = Odd()\n    return out\n",
        "decay: state: converting it to a NumPy array raised OSError: gone"),
    "a mapping whose items raise": (
        "from collections.abc import Mapping\n"
        "class Bad(Mapping):\n    def __getitem__(self, key):\n        raise LookupError(key)\n"
        "    def __iter__(self):\n        return iter(['states'])\n    def __len__(self):\n"
        "        return 1\n"
        "def solve(problem):\n    return Bad()\n", "raised LookupError while solving problem"),
    "a results dict containing itself": (
        "def solve(problem):\n    out = {}\n    out['gradients'] = out\n    return out\n",
        "raised RecursionError while solving problem 'decay'"),
    "raises at import": ("raise ValueError('broken at import')\ndef solve(problem):\n    pass\n",
                         "raised ValueError while being imported: broken at import"),
    "exits at import": ("import sys\nsys.exit(0)\n", "called sys.exit(0) while being imported"),
}


@pytest.mark.parametrize("case", list(CALLABLES), ids=list(CALLABLES))
def test_what_the_callable_does_cannot_become_the_verdict(case, user_module, capsys):
    source, message = CALLABLES[case]
    name = user_module("user_" + "".join(c if c.isalnum() else "_" for c in case), source)
    code = cli.main(["verify", "--callable", f"{name}:solve", "--problems", "decay,spiral"])
    out = capsys.readouterr().err
    assert code == 2, out
    assert message in out and len(out.strip().splitlines()) == 1, out


def test_what_the_callable_prints_goes_to_stderr(user_module, capsys):
    name = user_module("user_prints", """
        from refnode.verify import refnode_adjoint
        def solve(problem):
            print("PASSED: everything, says the callable", end="")
            return refnode_adjoint(problem)
        """)
    assert cli.main(["verify", "--callable", f"{name}:solve", "--problems", "decay"]) == 0
    captured = capsys.readouterr()
    assert "says the callable" not in captured.out and "says the callable" in captured.err
    assert captured.out.startswith("refnode verify: user_prints:solve against the golden values")


def console_script(tmp_path, *args, timeout=120):
    """``refnode ARGS`` as the installed console script runs it: a script in another
    directory (``python -m`` would put the current directory on the path by itself)."""
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    (bin_dir / "refnode").write_text("import sys\nfrom refnode.cli import main\nsys.exit(main())\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(bin_dir / "refnode"), *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_module_in_the_current_directory_is_found(tmp_path):
    """Run as a user would: from the directory holding mymod.py, nothing on PYTHONPATH but
    refnode itself (before: "cannot import 'mymod' ... is it on PYTHONPATH?")."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "mymod.py").write_text(
        "from refnode.verify import refnode_adjoint as solve\n")
    out = console_script(tmp_path, "verify", "--callable", "mymod:solve", "--problems", "decay")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASSED" in out.stdout


def test_a_missing_module_and_a_file_path_are_one_line(user_module, capsys):
    assert cli.main(["verify", "--callable", "no_such_module_xyz:f"]) == 2
    out = capsys.readouterr().err
    assert "no such module in the current directory" in out and len(out.splitlines()) == 1
    name = user_module("user_needs_a_dependency", "import no_such_dependency_xyz\n")
    assert cli.main(["verify", "--callable", f"{name}:f"]) == 2
    out = capsys.readouterr().err
    assert "raised ModuleNotFoundError while being imported" in out and "no_such_dependency" in out
    assert cli.main(["verify", "--callable", "./mymod.py:solve"]) == 2
    assert "not a file" in capsys.readouterr().err


def test_a_real_ctrl_c_exits_130_in_one_line(tmp_path):
    """SIGINT received while the callable runs: 'interrupted', 130, no traceback — and a
    KeyboardInterrupt the callable raises itself is not taken for one (the test above)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "slow.py").write_text(textwrap.dedent("""
        import os, signal, time
        def solve(problem):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
        """))
    out = console_script(tmp_path, "verify", "--callable", "slow:solve", timeout=60)
    assert out.returncode == 130, out.stdout + out.stderr
    assert out.stderr.strip() == "refnode verify: interrupted (Ctrl-C); nothing was verified."
    assert "Traceback" not in out.stderr


def test_the_interrupt_watch_restores_the_handler():
    from refnode.interrupt import InterruptWatch
    before = signal.getsignal(signal.SIGINT)
    with InterruptWatch() as watch:
        assert watch.active and signal.getsignal(signal.SIGINT) != before
    assert signal.getsignal(signal.SIGINT) == before and not watch.received


# --- the documented self-check passes at the defaults --------------------------------------

def documented_self_check():
    """The self-check line of docs/verify.md, verbatim (without its comment)."""
    lines = [line.split("#")[0].strip() for line in
             (ROOT / "docs" / "verify.md").read_text(encoding="utf-8").splitlines()]
    command = "refnode verify --callable refnode.verify:refnode_adjoint"
    assert command in lines, "docs/verify.md no longer shows the self-check at the defaults"
    return shlex.split(command)


def test_the_documented_self_check_passes_at_the_defaults(tmp_path):
    """Before: 'FAILED (13 quantities)', 13 of the stiff problem's dL/dt_i at atol = rtol."""
    argv = documented_self_check()
    assert argv[0] == "refnode"
    out = console_script(tmp_path, *argv[1:], timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("PASSED: 169 of 169")
    parser = argparse.ArgumentParser()
    verify_command.configure(parser)
    assert "refnode.verify:refnode_adjoint verifies refnode itself" in " ".join(
        parser.format_help().split())          # what --help offers is what is checked


def test_the_default_atol_is_a_thousandth_of_rtol():
    seen = []
    verify.verify_callable(lambda problem: seen.append((problem["rtol"], problem["atol"])),
                           1e-6, names=("decay",))
    assert seen == [(1e-6, verify.ATOL_FACTOR * 1e-6)] and verify.ATOL_FACTOR == 1e-3
