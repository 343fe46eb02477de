"""``refnode demo``: solvers, training and a four-way gradient check on the spiral.

The logic is in :mod:`refnode.demo`; this module prints what it finds and draws it.
"""

import os
import time

import numpy as np

from .. import demo
from ..device import to_device, to_host
from ..experiments.common import save_figure
from ..experiments.common_cli import (add_device_option, check_device_option, check_output_dir,
                                      nonnegative_int, path_text, positive_int, run_directory)

HELP = "the paper's spiral demo: every solver, a neural ODE fitted by the adjoint, gradients checked"

#: Training iterations of a full run, and of --quick.
ITERATIONS, QUICK_ITERATIONS = 1500, 30
#: Resolution of the figures (small PNGs, kept in the repository).
DPI = 100


def configure(parser):
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run of a few seconds ({QUICK_ITERATIONS} iterations)")
    parser.add_argument("--out", metavar="DIR", type=path_text,
                        help="directory for the figures (default: runs/demo, runs/demo-quick "
                        "with --quick; --out figures replaces the committed ones)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="random seed (default: 0)")
    parser.add_argument("--iterations", type=positive_int, default=None, metavar="N",
                        help=f"training iterations (default: {ITERATIONS}, "
                             f"{QUICK_ITERATIONS} with --quick)")
    add_device_option(parser, "the neural ODE trains and predicts there (the solver table "
                      "and the four-way gradient check stay on the CPU: autograd and the "
                      "finite differences are NumPy's)")


def run(args):
    import matplotlib
    matplotlib.use("Agg")
    iterations = args.iterations or (QUICK_ITERATIONS if args.quick else ITERATIONS)
    check_device_option(args)
    args.out = output_dir(args)
    rng = np.random.default_rng(args.seed)
    t = demo.spiral_times()
    z_true = demo.reference_solution(t)
    print(f"The spiral dz/dt = z³ A, A = {demo.SPIRAL_A.tolist()}, z(0) = {demo.SPIRAL_Z0.tolist()},"
          f" on [0, {demo.T_END:g}] at {len(t)} times (torchdiffeq examples/ode_demo.py).\n")
    show_solvers(t, z_true, args.out)
    f, theta = demo.make_model(rng)
    first_batch = demo.sample_windows(rng, t, z_true)
    gradients_agree = show_gradient_check(f, theta, first_batch)
    show_training(f, theta, t, z_true, rng, iterations, args.out, args.device)
    if not gradients_agree:
        print("FAILED: the gradients disagree beyond the tolerances above.")
        return 1
    return 0


def output_dir(args):
    """Where the figures go (``--out``, else the run directory), checked before any work."""
    out = args.out if args.out is not None else run_directory("demo", quick=args.quick)
    return check_output_dir(out, "--out")


def show_solvers(t, z_true, out):
    print(f"1. Every method on the true spiral. Fixed-step methods take "
          f"{demo.FIXED_STEPS_PER_INTERVAL} steps per output interval "
          f"(h = {(t[1] - t[0]) / demo.FIXED_STEPS_PER_INTERVAL:.5f}); adaptive ones run at "
          f"rtol = {demo.SOLVER_RTOL:g}, atol = {demo.SOLVER_ATOL:g}.\n"
          f"   Error: max |z - z_ref| over all times, z_ref by dop853 at "
          f"rtol = atol = {demo.REFERENCE_TOL:g}.\n")
    rows = demo.compare_solvers(t, z_true)
    print(solver_table(rows) + "\n")
    path = os.path.join(out, "solvers.png")
    plot_solvers(rows, t, z_true, path)
    print(f"   wrote {path}\n")


def solver_table(rows):
    """An aligned text table: method, order, kind, NFE, accepted/rejected, error, time."""
    header = ("method", "order", "step", "NFE", "accepted/rejected", "max error", "time [s]")
    cells = [header] + [(r["method"], str(r["order"]), "adaptive" if r["adaptive"] else "fixed",
                         str(r["nfe"]), f"{r['n_accepted']}/{r['n_rejected']}",
                         f"{r['max_error']:.2e}", f"{r['seconds']:.2f}") for r in rows]
    widths = [max(len(c[k]) for c in cells) for k in range(len(header))]
    lines = ["   " + "  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in
                               enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "   " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def show_gradient_check(f, theta, batch):
    print("2. The gradient of the first training step (loss on one batch of windows, as a "
          "function of z0 and theta),\n   four ways, each compared with the discrete adjoint "
          "(the exact gradient of the computed solution):\n")
    passed = True
    for table, why in demo.check_gradient(f, theta, batch):
        print("   " + why)
        print("\n".join("   " + line for line in str(table).splitlines()) + "\n")
        passed = passed and table.passed
    print("   All gradients agree.\n" if passed else "   Some gradients DISAGREE (rows marked FAIL).\n")
    return passed


def show_training(f, theta, t, z_true, rng, iterations, out, device="cpu"):
    """Train on ``device`` (the data and θ move there once), report and plot on the host."""
    print(f"3. Training dz/dt = MLP(z³) (2-50-2, tanh) on {iterations} random batches of "
          f"{demo.BATCH_SIZE} windows of {demo.BATCH_TIME} points,\n   Adam lr "
          f"{demo.LEARNING_RATE:g} (/10 after {demo.DECAY_AT:.0%}), mean squared error, "
          f"gradients by the adjoint (NFE per iteration shown)"
          f"{'' if device == 'cpu' else ', on device ' + device}.\n")
    start = time.perf_counter()
    t_d, z_true_d, theta_d = to_device((t, z_true, theta), device)
    theta_d, history = demo.train(f, theta_d, t_d, z_true_d, rng, iterations)
    z_fit = to_host(demo.predict(f, theta_d, t_d))
    theta = to_host(theta_d)
    last = slice(-min(50, iterations), None)
    print(f"\n   {time.perf_counter() - start:.1f} s; loss of the last iterations "
          f"{np.mean(history['loss'][last]):.3g} (first {history['loss'][0]:.3g}); mean NFE "
          f"forward {np.mean(history['nfe_forward']):.0f}, backward "
          f"{np.mean(history['nfe_backward']):.0f}.\n   The whole trajectory from z(0): "
          f"mean |z_learned - z_true| = {np.mean(np.abs(z_fit - z_true)):.3g}.")
    path = os.path.join(out, "demo_spiral.png")
    plot_fit(f, theta, t, z_true, z_fit, path)
    print(f"   wrote {path}\n")


def plot_solvers(rows, t, z_true, path):
    """Left: the spiral and the euler solution; right: each method's error (and NFE)."""
    import matplotlib.pyplot as plt
    fig, (ax_phase, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax_phase.plot(z_true[:, 0], z_true[:, 1], "k", lw=1.5, label="reference (dop853, 1e-12)")
    euler = next(r for r in rows if r["method"] == "euler")
    ax_phase.plot(euler["z"][:, 0], euler["z"][:, 1], "C3--", lw=1,
                  label=f"euler, h = {(t[1] - t[0]) / demo.FIXED_STEPS_PER_INTERVAL:.4f}")
    ax_phase.set(xlabel="x", ylabel="y", title="the spiral dz/dt = z³A", aspect="equal")
    ax_phase.legend(loc="lower left", fontsize=8)
    labels = [f"{r['method']} ({r['nfe']} NFE)" for r in rows]
    colors = ["C0" if r["adaptive"] else "C1" for r in rows]
    ax_cost.barh(labels, [r["max_error"] for r in rows], color=colors)
    ax_cost.set_xscale("log")
    ax_cost.invert_yaxis()
    ax_cost.set(xlabel="max |z - z_ref|", title="error per method (orange: fixed step, "
                "blue: adaptive)")
    ax_cost.grid(True, axis="x", alpha=0.3)
    save_figure(fig, path, dpi=DPI)


def plot_fit(f, theta, t, z_true, z_fit, path):
    """x(t), y(t) true vs learned; the phase portrait with the learned vector field."""
    import matplotlib.pyplot as plt
    fig, (ax_t, ax_phase) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k, (name, color) in enumerate((("x", "C0"), ("y", "C1"))):
        ax_t.plot(t, z_true[:, k], color=color, lw=1.5, label=f"{name} true")
        ax_t.plot(t, z_fit[:, k], "--", color=color, lw=1.2, label=f"{name} learned")
    ax_t.set(xlabel="t", ylabel="state", title="trajectories from z(0) = [2, 0]")
    ax_t.legend(fontsize=8, ncol=2)
    grid = np.linspace(-2.2, 2.2, 21)
    X, Y = np.meshgrid(grid, grid)
    field = f(0.0, np.stack([X.ravel(), Y.ravel()], axis=1), theta)
    ax_phase.quiver(X, Y, field[:, 0].reshape(X.shape), field[:, 1].reshape(X.shape),
                    color="0.7", angles="xy")
    ax_phase.plot(z_true[:, 0], z_true[:, 1], "k", lw=1.5, label="true")
    ax_phase.plot(z_fit[:, 0], z_fit[:, 1], "C3--", lw=1.2, label="learned")
    ax_phase.set(xlabel="x", ylabel="y", title="phase portrait (arrows: learned field)",
                 aspect="equal", xlim=(-2.3, 2.3), ylim=(-2.3, 2.3))
    ax_phase.legend(loc="lower left", fontsize=8)
    save_figure(fig, path, dpi=DPI)
