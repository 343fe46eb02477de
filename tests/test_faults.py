"""Fault injection: what every command that writes does when the file system or the user
interrupts it.

The rule, for ``demo``, ``reproduce table1/cnf/latent`` and ``bench workprecision``:

* a bad output path (a file where a directory belongs, a directory where a file belongs,
  a place that cannot be created) is refused before any work: one line, exit 2;
* a write that fails mid-run (disk full, read-only file system) is one line naming the
  path and the cause, exit 74, and nothing half-written under the final name;
* Ctrl-C, during the work or inside a write, is one line and exit 130, and the file being
  written keeps its previous content;
* a checkpoint of another run (other data, another architecture, other settings) is not
  resumed: one line naming what differs, exit 2;
* files are written with the umask's usual mode (0644 under umask 022), not 0600.

Faults are injected at :func:`refnode.files.atomic_write`, through which every file goes,
and, where this process may mount one, on a real full tmpfs.
"""

import contextlib
import errno
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import refnode.files
from refnode import cli
from refnode.checkpoint import load_checkpoint, save_checkpoint
from refnode.experiments.common import save_figure, write_json
from refnode.files import WriteError, atomic_write

pytestmark = pytest.mark.cli

#: One fast run of every command that writes, with its output directory under ``root``.
COMMANDS = {
    "demo": lambda root: ["demo", "--quick", "--iterations", "2", "--out", f"{root}/out"],
    "table1": lambda root: ["reproduce", "table1", "--tiny", "--models", "mlp", "--no-figures",
                            "--runs", f"{root}/out"],
    "cnf": lambda root: ["reproduce", "cnf", "--tiny", "--seeds", "1", "--out", f"{root}/out"],
    "latent": lambda root: ["reproduce", "latent", "--quick", "--seeds", "1", "--models", "rnn",
                            "--run-dir", f"{root}/out"],
    "workprecision": lambda root: ["bench", "workprecision", "--quick", "--out", f"{root}/out"],
}
#: Each command's first piece of work (after its arguments are checked).
FIRST_WORK = {"demo": "refnode.commands.demo.show_solvers",
              "table1": "refnode.experiments.table1.run_model",
              "cnf": "refnode.experiments.cnf.run_seed",
              "latent": "refnode.experiments.latent.experiment",
              "workprecision": "refnode.workprecision.run"}
#: Output options of each command: (flag, "dir" or "file").
OUTPUTS = {"demo": [("--out", "dir")],
           "table1": [("--out", "dir"), ("--runs", "dir"), ("--json", "file")],
           "cnf": [("--out", "dir"), ("--json", "file")],
           "latent": [("--run-dir", "dir"), ("--out", "dir"), ("--json", "file")],
           "workprecision": [("--out", "dir"), ("--json", "file")]}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory, so that default run directories land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def small_workprecision(monkeypatch):
    """bench workprecision's records are stubbed: these tests are about its writes."""
    import refnode.workprecision
    monkeypatch.setattr(refnode.workprecision, "run", lambda quick, repeats: dict(
        settings=dict(quick=quick, repeats=repeats), problems={}, records=[]))


def run_cli(argv, capsys):
    """(exit status, stderr lines) of ``refnode ARGV`` run in this process."""
    status = cli.main([str(a) for a in argv])
    return status, capsys.readouterr().err.strip().splitlines()


def assert_one_line(lines, status, expected_status, *fragments):
    """A failure reported as one line (the last on stderr), no traceback."""
    assert status == expected_status, lines
    assert not any("Traceback" in line for line in lines), lines
    errors = [line for line in lines if line.startswith("refnode")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def leftovers(directory):
    """Temporary files of atomic writes left in ``directory`` and below."""
    return [os.path.join(d, name) for d, _, names in os.walk(directory) for name in names
            if name.startswith(".tmp-")]


class FailingFile:
    """A file whose writes fail (``error``) once ``limit`` bytes are written; everything
    else (seek, tell, flush, ...) is the real file's."""

    def __init__(self, file, error, limit):
        self.file, self.error, self.limit, self.written = file, error, limit, 0

    def write(self, data):
        if self.written + len(data) > self.limit:
            raise self.error
        self.written += len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


@contextlib.contextmanager
def failing_writes(monkeypatch, error, limit=0, only=lambda path: True):
    """Make the writes of :func:`atomic_write` to a target ``only(path)`` raise ``error``
    after ``limit`` bytes. Yields the list of targets that failed."""
    failed = []
    real = refnode.files.atomic_write

    def atomic_write(path, write, mode="wb", prefix=None):
        if not only(os.fspath(path)):
            return real(path, write, mode, prefix)

        def failing(file):
            failed.append(os.fspath(path))
            write(FailingFile(file, error, limit))
        return real(path, failing, mode, prefix)

    for module in ("refnode.files", "refnode.checkpoint", "refnode.experiments.common",
                   "refnode.workprecision"):
        monkeypatch.setattr(f"{module}.atomic_write", atomic_write)
    yield failed


def full_disk():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- the atomic writer -----------------------------------------------------------------------


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO])
@pytest.mark.parametrize("limit", [0, 10])
def test_a_failed_write_is_one_write_error_and_leaves_the_previous_file(tmp_path, error, limit):
    target = tmp_path / "results.json"
    target.write_text("previous")

    def write(file):
        FailingFile(file, OSError(error, os.strerror(error)), limit).write(b"x" * 100)

    with pytest.raises(WriteError) as info:
        atomic_write(target, write)
    message = str(info.value)
    assert "\n" not in message and str(target) in message and os.strerror(error) in message
    assert errno.errorcode[error] in message
    assert target.read_text() == "previous" and leftovers(tmp_path) == []


def test_a_directory_that_cannot_be_created_is_a_write_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="cannot write .*file/a/b.json.*Not a directory"):
        write_json(tmp_path / "file" / "a" / "b.json", {"a": 1})


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, MemoryError])
def test_an_interrupted_write_leaves_the_previous_file_and_no_temporary(tmp_path, interrupt):
    target = tmp_path / "fig.png"
    target.write_bytes(b"previous")

    def write(file):
        file.write(b"half")
        raise interrupt()

    with pytest.raises(interrupt):
        atomic_write(target, write)
    assert target.read_bytes() == b"previous" and leftovers(tmp_path) == []


def _write_each_kind(directory):
    """Write one file with each writer; their paths."""
    import matplotlib.pyplot as plt
    save_figure(plt.figure(figsize=(1, 1)), directory / "fig.png")
    write_json(directory / "r.json", {"a": 1})
    save_checkpoint(directory / "c.npz", {"x": np.zeros(2)})
    from refnode.workprecision import write_json as write_records
    write_records({"records": []}, directory / "wp.json")
    return [directory / name for name in ("fig.png", "r.json", "c.npz", "wp.json")]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = _write_each_kind(tmp_path)
    finally:
        os.umask(old)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths} == \
        {p.name: oct(mode) for p in paths}


# --- commands: bad output paths, before any work ----------------------------------------------


def _bad_paths(root, kind):
    """(value, what the message says) for an output option of ``kind``."""
    a_file = root / "a_file"
    a_file.write_text("x")
    a_dir = root / "a_dir"
    a_dir.mkdir(exist_ok=True)
    if kind == "dir":
        return [(a_file, "is a file"), (a_file / "sub", "is a file"),
                ("/proc/refnode-x", "cannot create")]
    return [(a_dir, "is a directory"), (a_file / "r.json", "is a file"),
            ("/proc/refnode-x/r.json", "cannot create")]


@pytest.mark.parametrize("command, flag, kind",
                         [(c, f, k) for c, outs in OUTPUTS.items() for f, k in outs])
def test_a_bad_output_path_is_refused_before_any_work(command, flag, kind, in_tmp, capsys,
                                                      monkeypatch):
    def work(*args, **kwargs):
        raise AssertionError("work started before the output paths were checked")

    monkeypatch.setattr(FIRST_WORK[command], work)
    for value, says in _bad_paths(in_tmp, kind):
        status, lines = run_cli(COMMANDS[command](in_tmp) + [flag, value], capsys)
        assert_one_line(lines, status, 2, flag, says)


# --- commands: full disk, read-only, interrupted, mid-run --------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_a_write_failing_mid_run_is_one_line_exit_74_and_nothing_half_written(
        command, error, in_tmp, capsys, monkeypatch):
    with failing_writes(monkeypatch, OSError(error, os.strerror(error)), limit=50) as failed:
        status, lines = run_cli(COMMANDS[command](in_tmp), capsys)
    assert failed, "no write was attempted"
    assert_one_line(lines, status, cli.WRITE_FAILED, f"cannot write {failed[0]!r}",
                    os.strerror(error))
    assert not os.path.exists(failed[0]) and leftovers(in_tmp) == []


@pytest.mark.parametrize("command, json_flag", [("latent", "--json"), ("cnf", "--json"),
                                                ("workprecision", "--json")])
def test_json_on_a_full_disk_is_one_line_after_the_work(command, json_flag, in_tmp, capsys,
                                                         monkeypatch):
    target = str(in_tmp / "records.json")
    with failing_writes(monkeypatch, full_disk(), only=lambda path: path == target):
        status, lines = run_cli(COMMANDS[command](in_tmp) + [json_flag, target], capsys)
    assert_one_line(lines, status, cli.WRITE_FAILED, target, "No space left on device")
    assert not os.path.exists(target) and leftovers(in_tmp) == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ctrl_c_during_the_work_is_one_line_and_exit_130(command, in_tmp, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(FIRST_WORK[command], interrupted)
    status, lines = run_cli(COMMANDS[command](in_tmp), capsys)
    assert_one_line(lines, status, cli.INTERRUPTED, "interrupted")


@pytest.mark.parametrize("command", ["demo", "latent", "table1"])
def test_ctrl_c_inside_a_write_keeps_the_previous_file(command, in_tmp, capsys, monkeypatch):
    with failing_writes(monkeypatch, KeyboardInterrupt(), limit=10) as failed:
        status, lines = run_cli(COMMANDS[command](in_tmp), capsys)
    assert_one_line(lines, status, cli.INTERRUPTED, "interrupted")
    assert failed and not os.path.exists(failed[0]) and leftovers(in_tmp) == []


def test_ctrl_c_while_a_command_loads_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "available_commands", interrupted)
    status, lines = run_cli(["demo"], capsys)
    assert_one_line(lines, status, cli.INTERRUPTED, "interrupted")


def test_ctrl_c_in_a_real_process_is_one_line_and_exit_130(tmp_path):
    """SIGINT to a running ``refnode demo``: the shell's 130, one line, no traceback."""
    import signal
    import time
    env = dict(os.environ, PYTHONPATH=os.getcwd(), MPLBACKEND="Agg")
    process = subprocess.Popen([sys.executable, "-c", "import sys; from refnode.cli import main;"
                                " print('started', flush=True); sys.exit(main())", "demo",
                                "--out", str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    assert process.stdout.readline().strip() == "started"
    time.sleep(2.0)                                   # inside the work by now
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == cli.INTERRUPTED, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("refnode")
    assert leftovers(tmp_path) == []


def test_main_reports_a_raw_file_system_error_in_one_line(in_tmp, capsys, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/somewhere/file")

    monkeypatch.setattr(FIRST_WORK["demo"], no_space)
    status, lines = run_cli(COMMANDS["demo"](in_tmp), capsys)
    assert_one_line(lines, status, cli.WRITE_FAILED, "'/somewhere/file'", "No space left")


def test_other_exceptions_keep_their_traceback(in_tmp, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(FIRST_WORK["demo"], bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(COMMANDS["demo"](in_tmp))


# --- a real small file system, where this process may mount one --------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs at tmp_path/fs (skipped where mounting is not permitted)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux; the injected faults above cover this")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_really_full_disk_is_one_line_exit_74_and_nothing_half_written(small_tmpfs, capsys,
                                                                        monkeypatch):
    monkeypatch.chdir(small_tmpfs.parent)
    status, lines = run_cli(["demo", "--quick", "--iterations", "2", "--out", small_tmpfs],
                            capsys)
    assert_one_line(lines, status, cli.WRITE_FAILED, str(small_tmpfs / "solvers.png"),
                    "No space left on device")
    assert os.listdir(small_tmpfs) == []


def test_a_read_only_file_system_is_refused_before_any_work(small_tmpfs, capsys, monkeypatch):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    monkeypatch.setattr(FIRST_WORK["latent"], lambda *a, **k: pytest.fail("work started"))
    status, lines = run_cli(COMMANDS["latent"](small_tmpfs.parent) + ["--run-dir", small_tmpfs],
                            capsys)
    assert_one_line(lines, status, 2, "--run-dir", "Read-only file system")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused_before_any_work(in_tmp, capsys, monkeypatch):
    read_only = in_tmp / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    monkeypatch.setattr(FIRST_WORK["demo"], lambda *a, **k: pytest.fail("work started"))
    try:
        status, lines = run_cli(COMMANDS["demo"](in_tmp) + ["--out", read_only], capsys)
    finally:
        read_only.chmod(0o700)
    assert_one_line(lines, status, 2, "--out", "Permission denied")


# --- foreign checkpoints -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_data_sets(tmp_path_factory):
    """Two small IDX data sets of the same shape and size, different content."""
    from refnode.experiments.table1 import write_synthetic_idx
    root = tmp_path_factory.mktemp("idx")
    directories = []
    for name, seed in (("a", 1), ("b", 2)):
        (root / name).mkdir()
        directories.append(write_synthetic_idx(str(root / name), sizes=(64, 32), seed=seed))
    return directories


def table1_run(runs, data, *extra):
    return ["reproduce", "table1", "--tiny", "--no-figures", "--runs", runs, "--data", data,
            *extra]


def test_table1_refuses_a_checkpoint_trained_on_other_data(two_data_sets, tmp_path, capsys):
    a, b = two_data_sets
    assert run_cli(table1_run(tmp_path, a, "--models", "mlp"), capsys)[0] == 0
    (checkpoint,) = tmp_path.glob("*.npz")
    before = checkpoint.read_bytes()
    status, lines = run_cli(table1_run(tmp_path, b, "--models", "mlp"), capsys)
    assert_one_line(lines, status, 2, str(checkpoint), "training_data_sha256",
                    "use another --runs DIR")
    assert checkpoint.read_bytes() == before
    assert run_cli(table1_run(tmp_path, a, "--models", "mlp"), capsys)[0] == 0   # same data


def test_table1_refuses_a_checkpoint_of_another_architecture(two_data_sets, tmp_path, capsys):
    a, _ = two_data_sets
    assert run_cli(table1_run(tmp_path, a, "--models", "resnet", "--downsampling", "conv"),
                   capsys)[0] == 0
    status, lines = run_cli(table1_run(tmp_path, a, "--models", "resnet", "--downsampling",
                                       "res"), capsys)
    assert_one_line(lines, status, 2, "architecture.downsampling: 'conv' in the checkpoint, "
                                      "'res' here")


def test_table1_checkpoint_metadata_names_what_it_depends_on(two_data_sets, tmp_path, capsys):
    a, _ = two_data_sets
    run_cli(table1_run(tmp_path, a, "--models", "odenet", "--odenet-gradient", "discrete"), capsys)
    (checkpoint,) = tmp_path.glob("*.npz")
    identity = load_checkpoint(checkpoint)[1]["identity"]
    assert identity["model"] == "odenet" and identity["dtype"] == "float32"
    assert identity["architecture"] == {"channels": 8, "downsampling": "conv",
                                        "gradient": "discrete"}
    assert len(identity["training_data_sha256"]) == 64


def test_latent_refuses_a_checkpoint_of_other_settings(in_tmp, capsys):
    run = COMMANDS["latent"](in_tmp)
    assert run_cli(run, capsys)[0] == 0
    status, lines = run_cli(run + ["--batch-size", "7"], capsys)
    assert_one_line(lines, status, 2, "config.batch_size: 10 in the checkpoint, 7 here")


def test_a_checkpoint_of_another_format_is_refused_by_name(in_tmp, capsys):
    run = COMMANDS["latent"](in_tmp)
    path = in_tmp / "out" / "seed0_rnn_30.npz"
    path.parent.mkdir()
    save_checkpoint(path, {"params": np.zeros(3)}, {"something": "else"})
    status, lines = run_cli(run, capsys)
    assert_one_line(lines, status, 2, str(path), "belongs to another run")


def test_a_results_file_is_valid_json_after_a_failed_rewrite(in_tmp, monkeypatch):
    target = in_tmp / "r.json"
    write_json(target, {"run": 1})
    with failing_writes(monkeypatch, full_disk(), limit=3):
        with pytest.raises(WriteError):
            refnode.experiments.common.write_json(target, {"run": 2})
    assert json.loads(target.read_text()) == {"run": 1}


def test_ctrl_c_lost_in_a_finalizer_still_stops_the_command(in_tmp, capsys, monkeypatch):
    """Where Python would print 'Exception ignored' and train on, the next loop item stops."""
    from refnode.progress import progress
    from test_interrupt import lose_a_ctrl_c
    done = []

    def work(*args, **kwargs):
        for i in progress(range(100), enabled=False):
            done.append(i)
            if i == 3:
                lose_a_ctrl_c()

    monkeypatch.setattr(FIRST_WORK["demo"], work)
    status, lines = run_cli(COMMANDS["demo"](in_tmp), capsys)
    assert_one_line(lines, status, cli.INTERRUPTED, "interrupted")
    assert done == [0, 1, 2, 3] and not any("Exception ignored" in line for line in lines)


def test_ctrl_c_lost_in_a_finalizer_after_the_last_loop_is_still_130(in_tmp, capsys, monkeypatch):
    from test_interrupt import lose_a_ctrl_c
    monkeypatch.setattr(FIRST_WORK["demo"], lambda *args, **kwargs: lose_a_ctrl_c())
    status, lines = run_cli(COMMANDS["demo"](in_tmp), capsys)
    assert_one_line(lines, status, cli.INTERRUPTED, "interrupted")
