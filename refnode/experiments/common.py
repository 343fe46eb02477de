"""What every experiment shares: atomic output files, one training loop, seed summaries.

An experiment is two modules, the split ``refnode demo`` uses (:mod:`refnode.demo` holds
the logic, :mod:`refnode.commands.demo` the command line):

* the logic (``refnode/experiments/NAME.py``): plain functions that build models, train
  them with :func:`train` and return numbers and records; no printing, no argparse;
* the command (``HELP``, ``configure(parser)``, ``run(args)``): reads the arguments,
  checks them and every output path before any work (:mod:`refnode.experiments.common_cli`),
  calls the logic, prints the tables, and writes figures with :func:`save_figure` and
  results with :func:`write_json`.

Usage::

    from refnode.experiments.common import save_figure, summarize, train, write_json

    def step(params, iteration, rng):               # one minibatch
        loss, grad = model.loss_and_grad(params, draw_batch(rng))
        return loss, grad, {"nfe": nfe}              # metrics: shown and kept in history
    params, history = train(step, params, Adam(1e-2), 1000, rng=rng,
                            checkpoint="runs/x/model.npz", metadata={"seed": 0})
    write_json("runs/x/results.json", {"records": records,
                                        "summary": summarize(records, ("model",), "rmse")})
    save_figure(fig, "runs/x/figure.png")

Everything written here is written atomically (:func:`refnode.files.atomic_write`): a
temporary file in the target's own directory, flushed to disk, then ``os.replace`` onto the
target, so an interrupted run leaves the previous file (or none), never half a file; the
file gets the umask's usual mode (0644 under umask 022), and a failure of the file system
is a one-line :class:`~refnode.files.WriteError`.
"""

import json
import math
import os
import time

import numpy as np

from ..checkpoint import check_same_run, load_checkpoint, save_checkpoint
from ..device import device_of, to_device
from ..errors import InputError
from ..files import atomic_write
from ..progress import progress

#: Resolution of saved figures (small PNGs, fit to keep in the repository).
DPI = 110
#: Iterations between checkpoints of :func:`train` (and one after the last iteration).
CHECKPOINT_EVERY = 100


# --- files ---------------------------------------------------------------------------------


def save_figure(fig, path, dpi=DPI):
    """Lay out ``fig``, write it to ``path`` (PNG) atomically, and close it.

    The directory is created if needed. Returns ``path``.
    """
    import matplotlib.pyplot as plt
    try:
        fig.tight_layout()
        return atomic_write(path, lambda file: fig.savefig(file, dpi=dpi, format="png"), "wb")
    finally:
        plt.close(fig)


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically; returns ``path``.

    NumPy scalars and arrays become numbers and lists. NaN and infinity are refused (they
    are not JSON): store None for a value that does not exist.
    """
    text = json.dumps(data, indent=2, default=_to_builtin, allow_nan=False)
    return atomic_write(path, lambda file: file.write(text + "\n"), "w")


def _to_builtin(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


# --- training ------------------------------------------------------------------------------


def train(step, params, optimizer, iterations, *, schedule=None, rng=None, checkpoint=None,
          metadata=None, checkpoint_every=CHECKPOINT_EVERY, validate=None, desc="training",
          show_progress=True, stop_after=None):
    """Minimise a loss with ``optimizer`` for ``iterations`` steps, resumably.

    Parameters
    ----------
    step : callable
        ``loss, grad, metrics = step(params, iteration, rng)``: the loss of one minibatch
        (float), its gradient (a tree like ``params``) and a dict of numbers to show on the
        progress bar and keep in the history (``{}`` for none).
    params : tree
        Initial parameters (ignored when resuming from ``checkpoint``).
    optimizer : refnode.optim.Adam or SGD
    iterations : int >= 0
        Total number of steps, counting those of a resumed run.
    schedule : callable, optional
        ``iteration -> learning rate``; default: the optimizer's own rate.
    rng : numpy.random.Generator, optional
        Passed to ``step`` and saved in the checkpoint. On resume the caller's generator
        is set to the saved state, so it continues exactly as in an uninterrupted run.
    checkpoint : str, optional
        ``.npz`` path, written atomically every ``checkpoint_every`` steps and after the
        last; resumed from when it exists. Its metadata must equal ``metadata``, else an
        :class:`~refnode.errors.InputError` names the file and the settings that differ
        (nothing is overwritten).
    metadata : dict, optional
        JSON-serialisable description of the run, stored with the checkpoint: the identity
        of the data, the model and every setting that changes the result (a resume with
        any of them different is refused). Default ``{"desc": desc}``. Leave the iteration count out of it, and a
        finished run can be continued by calling again with more ``iterations``.
    checkpoint_every : int
        Steps between checkpoints and between validations.
    validate : callable, optional
        ``validate(params) -> float`` (lower is better, e.g. the loss on a validation
        split), evaluated every ``checkpoint_every`` steps and after the last. Then the
        parameters returned are those of the best validation, not the final iterate.
    desc : str
        Label of the progress bar.
    show_progress : bool
    stop_after : int, optional
        Stop after this many steps in total (to simulate an interrupted run in tests).

    Returns
    -------
    params : tree
        The parameters after the last step, or with ``validate`` the best validated ones.
    history : dict of lists
        One entry per step, from the first (also across a resume): ``loss``,
        ``seconds`` (wall time of the step) and each key of ``metrics``; with ``validate``
        also ``validation``, a list of ``[iteration, value]``, and ``best_iteration``.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
            or iterations < 0:
        raise InputError(f"iterations must be an integer >= 0, got {iterations!r}")
    metadata = {"desc": desc} if metadata is None else metadata
    state = {"params": params, "opt_state": optimizer.init(params), "iteration": 0,
             "rng": rng, "history": {"loss": [], "seconds": []}, "best": None}
    if checkpoint is not None:
        state = _resume(checkpoint, metadata, state)
    last = iterations if stop_after is None else min(iterations, stop_after)
    bar = progress(range(state["iteration"], last), desc=desc, enabled=show_progress)
    for i in bar:
        start = time.perf_counter()
        loss, grad, metrics = step(state["params"], i, state["rng"])
        lr = None if schedule is None else schedule(i)
        state["params"], state["opt_state"] = optimizer.update(
            state["params"], grad, state["opt_state"], lr=lr)
        state["iteration"] = i + 1
        for key, value in dict(loss=loss, seconds=time.perf_counter() - start,
                               **metrics).items():
            state["history"].setdefault(key, []).append(value)
        bar.set(loss=loss, **metrics)
        if (i + 1) % checkpoint_every == 0 or i + 1 == last:
            if validate is not None:
                _validate(state, validate)
            if checkpoint is not None:
                save_checkpoint(checkpoint, state, metadata)
    if validate is None or state["best"] is None:
        return state["params"], state["history"]
    return state["best"]["params"], dict(state["history"],
                                         best_iteration=state["best"]["iteration"])


def _validate(state, validate):
    """Record ``validate(params)`` and keep the best parameters so far in ``state``."""
    value = float(validate(state["params"]))
    state["history"].setdefault("validation", []).append([state["iteration"], value])
    if state["best"] is None or value < state["best"]["value"]:
        state["best"] = {"params": state["params"], "value": value,
                         "iteration": state["iteration"]}


def _resume(path, metadata, fresh):
    """The saved training state at ``path``, or ``fresh`` when there is none yet."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not os.path.exists(path):
        return fresh
    saved, saved_metadata = load_checkpoint(path)
    check_same_run(path, saved_metadata, metadata, "delete it to start that model afresh, or "
                   "choose another run directory")
    saved = to_device(saved, device_of(fresh["params"]))   # host arrays -> the run's device
    if fresh["rng"] is not None:
        fresh["rng"].bit_generator.state = saved["rng"].bit_generator.state
        saved["rng"] = fresh["rng"]
    return saved


# --- several seeds -------------------------------------------------------------------------


def summarize(records, by, value):
    """Mean, sample standard deviation and count of ``value`` over records grouped by ``by``.

    Parameters
    ----------
    records : list of dict
        One per (setting, seed), e.g. ``{"model": "rnn", "n_obs": 30, "seed": 0, "rmse": 0.4}``.
    by : tuple of str
        The keys that name a setting, e.g. ``("model", "n_obs")``.
    value : str
        The measured key, e.g. ``"rmse"``.

    Returns
    -------
    list of dict
        One per setting, in order of first appearance: the ``by`` keys, then ``mean``,
        ``sd`` (ddof = 1; None with a single seed) and ``n``.
    """
    groups = {}
    for record in records:
        groups.setdefault(tuple(record[k] for k in by), []).append(float(record[value]))
    rows = []
    for key, values in groups.items():
        n = len(values)
        mean = math.fsum(values) / n
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        rows.append(dict(zip(by, key), mean=mean, sd=sd, n=n))
    return rows


def mean_sd(row, digits=3):
    """``"mean ± sd"`` of a :func:`summarize` row (just the mean with one seed)."""
    if row["sd"] is None:
        return f"{row['mean']:.{digits}f}"
    return f"{row['mean']:.{digits}f} ± {row['sd']:.{digits}f}"
