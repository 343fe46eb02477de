"""The course's assignments, checked both ways: ``refnode course build`` writes the handout
deterministically (and never into the repository or a non-empty folder); each assignment's
grading fails on the blank template with a hint and passes on the reference solution
(refnode's own functions) and on a student's solution written from scratch; typical wrong
answers are caught with a hint naming the mistake; a class is graded into one table."""

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from refnode import cli
from refnode.commands import course

pytestmark = [pytest.mark.tutorial, pytest.mark.cli]

ROOT = Path(__file__).resolve().parent.parent

#: A student's solutions written from scratch (plain NumPy), one per assignment.
SOLUTIONS = {
    "01_rk_step": '''
import numpy as np

def rk_step(f, tableau, t, y, h, theta, k1):
    A = [[float(a) for a in row] for row in tableau.A]
    b, c = [float(x) for x in tableau.b], [float(x) for x in tableau.c]
    k = [k1]
    for i in range(1, tableau.stages):
        Y = y + h * sum(A[i][j] * k[j] for j in range(i))
        k.append(f(t + c[i] * h, Y, theta))
    y1 = y + h * sum(b_i * k_i for b_i, k_i in zip(b, k))
    error = None
    if tableau.b_hat is not None:
        error = h * sum((b_i - float(bh)) * k_i for b_i, bh, k_i in zip(b, tableau.b_hat, k))
    return y1, error, k
''',
    "02_error_control": '''
import numpy as np
from refnode.step_size import MAX_FACTOR, MIN_FACTOR, SAFETY

def scaled_error(error, y0, y1, rtol, atol):
    return error / (atol + rtol * np.maximum(np.abs(y0), np.abs(y1)))

def error_ratio(error, y0, y1, rtol, atol, per_sample=False):
    return float(np.sqrt(np.mean(scaled_error(error, y0, y1, rtol, atol) ** 2)))

def step_factor(ratio, q, after_rejection=False):
    if ratio == 0:
        factor = MAX_FACTOR
    elif not np.isfinite(ratio):
        factor = MIN_FACTOR
    else:
        factor = min(MAX_FACTOR, max(MIN_FACTOR, SAFETY * ratio ** (-1.0 / q)))
    return min(factor, 1.0) if after_rejection else factor
''',
    "03_layer_vjps": '''
import numpy as np

def concat_linear_vjp(self, theta, cache, g):
    x, t = cache
    W = theta["W"]
    g_rows, x_rows = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    xt = np.concatenate([x_rows, np.full((len(x_rows), 1), t)], axis=1)
    return g @ W[:, :-1], {"W": g_rows.T @ xt, "b": g_rows.sum(axis=0)}, np.sum(g @ W[:, -1])

def tanh_vjp(self, theta, cache, g):
    return g * (1.0 - cache ** 2), {}, 0.0

def sequential_vjp(self, theta, cache, g):
    g_theta, g_t = [None] * len(self.layers), 0.0
    for i in reversed(range(len(self.layers))):
        g, g_theta[i], g_t_i = self.layers[i].vjp(theta[i], cache[i], g)
        g_t = g_t + g_t_i
    return g, g_theta, g_t
''',
    "04_adjoint": '''
import numpy as np
from refnode.adjoint import AugmentedState, add_stats, channel_norm_of, last_state, solve_back

def augmented_dynamics(f, theta_channel=True):
    def aug_dynamics(t, s, theta):
        a_z, a_theta, a_t = f.vjp(t, s.z, theta, s.a)
        theta_part = () if theta is None or not theta_channel else -a_theta
        return AugmentedState(f(t, s.z, theta), -a_z, theta_part, -a_t)
    return aug_dynamics

def at_output_time(aug, s, z_i, g_i, t_i, theta, reset):
    if reset:
        s = s._replace(z=z_i)
    k1 = aug(t_i, s, theta)
    dL_dti = float(np.sum(g_i * k1.z))
    return s._replace(t_bar=s.t_bar - dL_dti), dL_dti, k1

def adjoint_sweep(f, t, zs, g, theta, settings):
    aug, norm = augmented_dynamics(f), channel_norm_of(settings, per_sample=False)
    N = len(t) - 1
    s = AugmentedState(zs[N], g[N], np.zeros_like(theta), np.zeros(()))
    dt, stats, h = np.zeros(N + 1), {}, None
    for i in range(N, 0, -1):
        s, dt[i], k1 = at_output_time(aug, s, zs[i], g[i], t[i], theta, settings.reset)
        sol = solve_back(aug, s, t[i], t[i - 1], theta, k1, settings, norm, h)
        s, h, stats = last_state(sol), sol.next_step, add_stats(stats, sol.stats)
        s = s._replace(a=s.a + g[i - 1])
    dt[0] = s.t_bar
    return s.a, s.theta_bar, dt, stats
''',
    "05_cnf": '''
import numpy as np
from refnode.models.ffjord import draw_noise
from refnode.models.planar_flow import standard_normal_logpdf

def trace_exact(jvp, z):
    B, D = z.shape
    total = np.zeros(B)
    for i in range(D):
        e = np.zeros((B, D))
        e[:, i] = 1.0
        total = total + jvp(e)[:, i]
    return total

def trace_hutchinson(jvp, eps):
    return np.sum(eps * jvp(eps), axis=1)

def cnf_dynamics(field, eps=None):
    def F(t, s, theta):
        z = s[:, :-1]
        jvp = lambda v: field.jvp(t, z, theta, v)
        tr = trace_exact(jvp, z) if eps is None else trace_hutchinson(jvp, eps)
        return np.concatenate([field(t, z, theta), -tr[:, None]], axis=1)
    return F

def log_density(field, theta, x, T, solve, rng=None):
    eps = None if rng is None else draw_noise(rng, x.shape)
    s = np.concatenate([x, np.zeros((len(x), 1))], axis=1)
    s0 = solve(cnf_dynamics(field, eps), s, T, 0.0, theta)
    return standard_normal_logpdf(s0[:, :-1]) - s0[:, -1]
''',
}
#: The capstone wires the student's own rk_step (01) and adjoint_sweep (04) together.
SOLUTIONS["06_capstone"] = SOLUTIONS["01_rk_step"] + SOLUTIONS["04_adjoint"] + '''
import math
from refnode.demo import make_model, reference_solution, sample_windows, spiral_times, window_loss
from refnode.methods import METHODS
from refnode.optim import Adam
from refnode.options import Adjoint
from refnode.params import flatten

def rk_solve(f, y, t_start, t_end, theta, max_step=0.01):
    n = max(1, math.ceil(abs(t_end - t_start) / max_step))
    h = (t_end - t_start) / n
    for j in range(n):
        y = rk_step(f, METHODS["rk4"], t_start + j * h, y, h, theta, f(t_start + j * h, y, theta))[0]
    return y

def odeint(f, z0, t, theta, max_step=0.01):
    zs = [z0]
    for i in range(1, len(t)):
        zs.append(rk_solve(f, zs[-1], t[i - 1], t[i], theta, max_step))
    return np.array(zs)

def flat_dynamics(f, vjp, shape, unflatten):
    def F(t, z, theta):
        return f(t, z.reshape(shape), unflatten(theta)).ravel()
    def F_vjp(t, z, theta, a):
        a_z, a_theta, a_t = vjp(t, z.reshape(shape), unflatten(theta), a.reshape(shape))
        return a_z.ravel(), flatten(a_theta)[0], float(np.sum(a_t))
    F.vjp = F_vjp
    return F

def verify_solve(problem):
    theta, unflatten = flatten(problem["parameters"])
    z0, t = problem["z0"], problem["t"]
    F = flat_dynamics(problem["f"], problem["vjp"], z0.shape, unflatten)
    zs = odeint(F, z0.ravel(), t, theta)
    dz0, dtheta, dt, _ = adjoint_sweep(F, t, zs, problem["cotangents"].reshape(len(t), -1), theta,
                                       Adjoint(method="rk4", step_size=0.01))
    return {"states": zs.reshape((len(t),) + z0.shape),
            "gradients": {"z0": dz0.reshape(z0.shape), "theta": unflatten(dtheta), "t": dt}}

def train_spiral(iterations=100, seed=0):
    rng = np.random.default_rng(seed)
    t_all = spiral_times()
    z_true = reference_solution(t_all)
    f, tree = make_model(rng)
    theta, unflatten = flatten(tree)
    adam = Adam(lr=0.01)
    state, losses = adam.init(theta), []
    for _ in range(iterations):
        z0, t, z_window = sample_windows(rng, t_all, z_true)
        F = flat_dynamics(f, f.vjp, z0.shape, unflatten)
        zs = odeint(F, z0.ravel(), t, theta, 0.025)
        loss, g = window_loss(zs.reshape(z_window.shape), z_window)
        dtheta = adjoint_sweep(F, t, zs, g.reshape(len(t), -1), theta, Adjoint(method="rk4", step_size=0.025))[1]
        theta, state = adam.update(theta, dtheta, state)
        losses.append(loss)
    return f, unflatten(theta), losses
'''

#: (assignment, the mistake: (text in the solution, its wrong replacement), words of the hint).
MISTAKES = [
    ("01_rk_step", ("t + c[i] * h", "t + h"), "a wrong stage time"),
    ("01_rk_step", ("zip(b, k))", "zip(tableau.b_hat or b, k))"), "embedded weights b̂"),
    ("01_rk_step", ("(b_i - float(bh))", "(float(bh) - b_i)"), "error has the wrong sign"),
    ("02_error_control", ("np.maximum(np.abs(y0), np.abs(y1))", "np.abs(y0)"), "|y0| only"),
    ("02_error_control", ("np.sqrt(np.mean(scaled_error(error, y0, y1, rtol, atol) ** 2))",
                          "np.max(np.abs(scaled_error(error, y0, y1, rtol, atol)))"), "max norm"),
    ("02_error_control", ("(-1.0 / q)", "(-1.0 / (q - 1))"), "exponent -1/(p̂ = q − 1)"),
    ("02_error_control", ("min(factor, 1.0) if after_rejection else factor", "factor"), "capped at 1"),
    ("03_layer_vjps", ("return g @ W[:, :-1],", "return -(g @ W[:, :-1]),"), "a sign error"),
    ("03_layer_vjps", ('"W": g_rows.T @ xt', '"W": g_rows.T @ x_rows'), "missing 1 column"),
    ("03_layer_vjps", ('"b": g_rows.sum(axis=0)', '"b": g_rows.mean(axis=0)'), "missing sum"),
    ("04_adjoint", ("theta), -a_z, theta_part", "theta), a_z, theta_part"), "da/dt has the wrong sign"),
    ("04_adjoint", ("theta_part, -a_t)", "theta_part, a_t)"), "da_t/dt has the wrong sign"),
    ("04_adjoint", ("else -a_theta", "else a_theta"), "da_θ/dt has the wrong sign"),
    ("04_adjoint", ("solve_back(aug, s, t[i], t[i - 1],", "solve_back(aug, s, t[i - 1], t[i],"),
     "forgetting to reverse time"),
    ("04_adjoint", ("s._replace(t_bar=s.t_bar - dL_dti)", "s"), "the dL/dt_i jump"),
    ("04_adjoint", ("t_bar=s.t_bar - dL_dti", "t_bar=s.t_bar + dL_dti"), "t̄ ← t̄ + ∂L/∂t_i: a sign error"),
    ("04_adjoint", ("float(np.sum(g_i * k1.z))", "-float(np.sum(g_i * k1.z))"), "∂L/∂t_i has the wrong sign"),
    ("04_adjoint", ("    if reset:\n        s = s._replace(z=z_i)\n", ""), "(the reset)"),
    ("04_adjoint", ("s = s._replace(a=s.a + g[i - 1])", "pass"), "a ← a + ∂L/∂z(t_i)"),
    ("05_cnf", ("total + jvp(e)[:, i]", "total + np.sum(jvp(e), axis=1)"), "sum of all the Jacobian"),
    ("05_cnf", ("total + jvp(e)[:, i]", "total + np.sum(jvp(e) ** 2, axis=1)"), "Frobenius norm"),
    ("05_cnf", ("np.sum(eps * jvp(eps), axis=1)", "np.mean(eps * jvp(eps), axis=1)"), "divided by D"),
    ("05_cnf", ("-tr[:, None]", "tr[:, None]"), "dℓ/dt = +tr(∂f/∂z): a sign error"),
    ("05_cnf", ("s0[:, :-1]) - s0[:, -1]", "s0[:, :-1]) + s0[:, -1]"), "log N(z(0)) + ℓ(0): a sign error"),
    ("05_cnf", ("s, T, 0.0, theta)", "s, 0.0, T, theta)"), "forgetting to reverse time"),
    ("06_capstone", ("h = (t_end - t_start) / n", "h = abs(t_end - t_start) / n"),
     "forgetting to reverse time"),
    ("06_capstone", ("n = max(1, math.ceil(abs(t_end - t_start) / max_step))",
                     "n = max(1, int(abs(t_end - t_start) / max_step))"), "rounded up, not down"),
    ("06_capstone", ("theta, state = adam.update(theta, dtheta, state)",
                     "theta, state = adam.update(theta, -dtheta, state)"), "held-out loss"),
    ("05_cnf", ("s0 = solve(cnf_dynamics(field, eps), s,",
                "s0 = solve(lambda t, s, th: cnf_dynamics(field, None if rng is None else "
                "draw_noise(rng, x.shape))(t, s, th), s,"), "a non-fixed noise"),
]


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    directory = tmp_path_factory.mktemp("course")
    course.build(directory)
    return directory


def run_pytest(directory, **env):
    environment = dict(os.environ, **env,
                       PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=directory, env=environment,
                          capture_output=True, text=True, timeout=300)


def grading_failures(folder, submission):
    """{test: message} of an assignment's grading tests run in-process on ``submission``."""
    [path] = folder.glob("test_*.py")
    spec = importlib.util.spec_from_file_location(f"grading_{folder.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    failures = {}
    for name, test in vars(module).items():
        if not name.startswith("test_"):
            continue
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
        params = [{marks[0].args[0]: value} for value in marks[0].args[1]] if marks else [{}]
        for extra in params:
            with pytest.MonkeyPatch.context() as monkeypatch:
                available = dict(submission=submission, monkeypatch=monkeypatch, **extra)
                arguments = {p: available[p] for p in inspect.signature(test).parameters}
                try:
                    test(**arguments)
                except Exception as err:        # AssertionError, or refnode's own check
                    failures[name] = str(err)
    return failures


def student(text):
    namespace = {}
    exec(compile(text, "student.py", "exec"), namespace)
    return types.SimpleNamespace(**namespace)


def test_every_assignment_has_a_statement_tests_and_functions_with_docstrings():
    for assignment in course.assignments():
        folder = ROOT / "course" / assignment["folder"]
        statement = (folder / "README.md").read_text(encoding="utf-8")
        for section in ("**Implement**", "**What the tests check**", "**Run:**", "**Time:**",
                        "**Prerequisites:**"):
            assert section in statement, (assignment["folder"], section)
        assert len(list(folder.glob("test_*.py"))) == 1
        assert set(SOLUTIONS[assignment["folder"]].split("def ")[1:]) and all(
            f"def {name}(" in SOLUTIONS[assignment["folder"]] for name in assignment["blanks"])


def test_the_template_keeps_signature_and_docstring_and_blanks_the_body():
    text = course.blank("refnode.nn.dense:ConcatLinear.vjp", "concat_linear_vjp")
    assert text.startswith("def concat_linear_vjp(self, theta, cache, g):")
    assert "g_W = Σ_batch gᵀ [x, t]" in text and "xp.concatenate" not in text
    assert text.rstrip().endswith('raise NotImplementedError("concat_linear_vjp: your code here")')


def test_generation_is_deterministic(tmp_path, handout):
    course.build(tmp_path / "again")
    first = {p.relative_to(handout): p.read_bytes() for p in sorted(handout.rglob("*")) if p.is_file()}
    second = {p.relative_to(tmp_path / "again"): p.read_bytes()
              for p in sorted((tmp_path / "again").rglob("*")) if p.is_file()}
    assert first == second


def test_build_refuses_the_repository_and_a_non_empty_folder(tmp_path, capsys):
    assert cli.main(["course", "build", str(ROOT / "handout")]) == 2
    assert "inside the repository" in capsys.readouterr().err
    assert not (ROOT / "handout").exists()
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["course", "build", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err and not (tmp_path / "01_rk_step").exists()
    assert cli.main(["course", "build", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "01_rk_step" / "student.py").is_file()


def test_every_assignment_fails_on_the_blank_template_with_a_hint(handout):
    result = run_pytest(handout)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "passed" not in result.stdout.splitlines()[-1], result.stdout[-3000:]
    failures = result.stdout.split("short test summary info")[0].rstrip("= \n")
    blocks = re.split(r"^_{3,} (test_\S+) _{3,}$", failures, flags=re.M)[1:]
    n_tests = sum(1 for _ in handout.glob("*/test_*.py"))
    assert len(blocks) // 2 >= 5 * n_tests
    for name, body in zip(blocks[::2], blocks[1::2]):         # the hint is the whole report
        first = body.strip().splitlines()[0]
        assert re.search(r"raised NotImplementedError at (student\.py line|line \d+ of \S+student\.py)",
                         first), (name, body)
        assert len(body.strip().splitlines()) <= 2, (name, body)


def test_every_assignment_passes_on_the_reference_solution(handout):
    result = run_pytest(handout, REFNODE_SUBMISSION="refnode")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"^\d+ passed", result.stdout.splitlines()[-1])


@pytest.mark.parametrize("folder", sorted(SOLUTIONS))
def test_a_students_own_solution_passes(handout, folder):
    assert grading_failures(handout / folder, student(SOLUTIONS[folder])) == {}


@pytest.mark.parametrize("folder, mistake, hint", MISTAKES,
                         ids=[f"{m[0][:2]}-{m[2]}" for m in MISTAKES])
def test_a_typical_mistake_is_caught_with_a_hint_naming_it(handout, folder, mistake, hint):
    right, wrong = mistake
    assert right in SOLUTIONS[folder]
    failures = grading_failures(handout / folder, student(SOLUTIONS[folder].replace(right, wrong)))
    assert failures, "the mistake went unnoticed"
    first = next(iter(failures.values()))
    assert hint in first, first


def test_a_class_is_graded_into_one_table(handout, tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "ann.py").write_text(SOLUTIONS["03_layer_vjps"])
    (submissions / "bob").mkdir()
    (submissions / "bob" / "student.py").write_text(
        SOLUTIONS["03_layer_vjps"].replace('"W": g_rows.T @ xt', '"W": g_rows.T @ x_rows'))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "refnode.cli", "course", "grade",
                             str(handout / "03_layer_vjps"), str(submissions)],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "student" and lines[0].split()[-1] == "passed"
    assert lines[1].startswith("ann") and lines[1].endswith("5/5")
    assert lines[2].startswith("bob") and " F " in lines[2] and not lines[2].endswith("5/5")
    assert any(line.startswith("bob, test_") and "missing 1 column" in line for line in lines)


def test_without_pytest_build_says_so_and_grade_refuses_before_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(course, "pytest_available", lambda: False)
    assert cli.main(["course", "build", str(tmp_path / "h")]) == 0
    assert "pip install pytest" in capsys.readouterr().out
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "ann.py").write_text("x = 1\n")
    assert cli.main(["course", "grade", str(tmp_path / "h" / "03_layer_vjps"),
                     str(tmp_path / "subs")]) == 2
    err = capsys.readouterr().err
    assert "pip install pytest" in err and "nothing was graded" in err and len(err.splitlines()) == 1
