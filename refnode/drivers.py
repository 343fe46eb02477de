"""The shared drivers: a fixed grid, and an adaptive loop with one step size per solve.

Both run :func:`refnode.rk_step.rk_step`:

* :func:`solve_fixed` — each output interval [t_i, t_{i+1}] is cut into equal steps
  (``n_steps`` of them, or the fewest no longer than ``step_size``), so the output times
  are step points and nothing is interpolated;
* :func:`solve_adaptive` — an embedded pair with error control (:mod:`refnode.step_size`;
  the method computes its own error ratio, ``tableau.error_ratio``); output times
  between step points are filled in by dense output (:mod:`refnode.dense_output`), so
  they never shorten a step.

A state of shape (B, D) is one big state here: one error norm over the whole batch, one
step size (``batch="shared"``). Per-sample steps (``batch="independent"``) are a masked
variant of the adaptive loop in :mod:`refnode.independent`, on the same step arithmetic.

GPU arrays (CuPy): every stage, error estimate and dense output stays on the device; the
loop reads one value on the host per step, the error ratio that decides accept/reject.
Times and step sizes are host floats.
"""

import numpy as np

from .backend import array_module, to_numpy
from .backend import concatenate as concatenate_arrays, stack as stack_arrays
from .dense_output import extra_stages, interpolate_steps
from .errors import NonFiniteStateError
from .params import tree_leaves, tree_map
from .rk_step import rk_step
from .solution import DenseSolution, DenseStep, Solution, StepRecord
from .step_policy import (carried_step, clip_step, count_nonfinite, end_derivative,
                          evaluations, failure, failure_error, n_extra_stages, next_step,
                          output_inside, outputs_reached, step_end)
from .step_size import initial_step


def fixed_grid(t, step_size=None, n_steps=None):
    """Number of equal steps in each output interval: ``n_steps``, or ceil(|Δt| / step_size)."""
    if n_steps is not None:
        return [n_steps] * (len(t) - 1)
    return [max(1, int(np.ceil(abs(t1 - t0) / step_size * (1 - 1e-12)))) for t0, t1 in zip(t[:-1], t[1:])]


def solve_fixed(f, tableau, y0, t, theta, k1, step_size=None, n_steps=None, trace=False,
                keep_grid=True, keep_states=False):
    """Fixed-grid driver: equal steps inside each output interval (see :func:`fixed_grid`).

    ``keep_states`` keeps the state at every step point (``Solution.states``).
    """
    y, ys, grid = y0, [y0], [float(t[0])] if keep_grid else None
    states = [y0] if keep_states else None
    records = [] if trace else None
    nfe, n_total = 1, 0
    times = t.tolist()                  # Python floats: they never promote a float32 state
    for t_i, t_next, n in zip(times[:-1], times[1:], fixed_grid(t, step_size, n_steps)):
        h = (t_next - t_i) / n
        for j in range(n):
            t_n = t_i + j * h
            if n_total > 0:
                k1 = k[-1] if tableau.fsal else f(t_n, y, theta)
                nfe += 0 if tableau.fsal else 1
            y, _, k = rk_step(f, tableau, t_n, y, h, theta, k1)
            nfe += tableau.stages - 1
            n_total += 1
            if not all_finite(y):
                raise NonFiniteStateError(
                    f"the state became non-finite in step {n_total} from t = {float(t_n)!r} to "
                    f"{float(t_n + h)!r} (h = {float(h)!r}). Try a smaller step_size, an adaptive method, "
                    "or check the dynamics for overflow.", t=t_n)
            if keep_grid:
                grid.append(float(t_next) if j == n - 1 else t_n + h)
            if keep_states:
                states.append(y)
            if trace:
                records.append(StepRecord(t_n, h, float("nan"), True))
        ys.append(y)
    stats = dict(nfe=nfe, n_steps=n_total, n_accepted=n_total, n_rejected=0)
    return Solution(t=t, z=stack(ys), stats=stats, trace=records, grid=grid, states=states)


def all_finite(y):
    """True if every entry of the state (an array or a tree of arrays) is finite."""
    return all(bool(to_numpy(array_module(leaf).all(array_module(leaf).isfinite(leaf))))
               for leaf in tree_leaves(y))


def expand(y):
    """y with a new leading axis of length 1 (arrays or trees): a copy, never a view of z0."""
    return tree_map(lambda leaf: stack_arrays([leaf]), y)


def concatenate(blocks):
    """Concatenate blocks (m_j, *shape) along the first axis (arrays or trees)."""
    if len(blocks) == 1:
        return blocks[0]
    return tree_map(lambda *leaves: concatenate_arrays(leaves), *blocks)


def stack(ys):
    """Stack a list of states (arrays, or trees of arrays) along a new first axis."""
    first = ys[0]
    if isinstance(first, (tuple, list, dict)):
        return tree_map(lambda *leaves: stack_arrays(leaves), *ys)
    return stack_arrays(ys)


def first_step_size(f, tableau, t0, y0, k1, theta, direction, norm, control):
    """The first trial step and the evaluations it cost: control.first_step, or Hairer's."""
    if control.first_step is None:
        return initial_step(f, t0, y0, k1, theta, direction, tableau.error_power(), norm), 2
    return direction * control.first_step, 1


def solve_adaptive(f, tableau, y0, t, direction, theta, k1, norm, control, *, dense=False,
                   keep_grid=True, keep_states=False):
    """Adaptive driver: try a step, accept it if its error ratio is <= 1, adapt h.

    The rules of the loop (landing on t[-1], the controller, the failure checks, the cost
    of a step) are :mod:`refnode.step_policy`'s, shared with the per-sample loop; what it
    keeps besides the state is the :class:`Recorder`'s. Outputs inside an accepted step
    come from dense output, so they never shorten a step.

    Parameters
    ----------
    f, tableau, y0, t, direction, theta
        As checked by :func:`refnode.solve`; ``k1`` = f(t[0], y0).
    norm : callable
        ``norm(error, y0, y1) -> float``, the error norm (:func:`refnode.step_size.rms_norm`).
    control : StepControl
    dense, keep_grid, keep_states : bool
        Keep every step for ``Solution.dense``; record the accepted step points in
        ``Solution.grid`` (the discrete adjoint reverses the steps between them); keep the
        state at each of them in ``Solution.states``.
    """
    q, t_end = tableau.error_power(), float(t[-1])
    h, nfe = first_step_size(f, tableau, float(t[0]), y0, k1, theta, direction, norm, control)
    t_n, y, carried, rejected_last, nonfinite, last = float(t[0]), y0, h, False, 0, None
    record = Recorder(t, y0, nfe, keep_grid, control.trace, dense, keep_states)
    while record.i_out < len(t):
        h_try = clip_step(t_n, h, t_end, direction)
        code = failure(t_n, h_try, t_end, record.n_attempted, nonfinite, control)
        if code:
            raise failure_error(code, t_n, h_try, (float(t[0]), t_end), last, control, norm)
        y1, error, k = rk_step(f, tableau, t_n, y, h_try, theta, k1)
        ratio = tableau.error_ratio(norm, h_try, error, k, y, y1)
        accepted, extra = ratio <= 1.0, False
        if accepted:
            t_next = step_end(t_n, h_try, t_end)
            f1 = end_derivative(f, tableau, t_next, y1, theta, k)
            extra = n_extra_stages(tableau) > 0 and (
                dense or output_inside(t, record.i_out, t_next, direction))
            k = extra_stages(f, tableau, t_n, y, h_try, theta, k) if extra else k
            record.accept(tableau, t_n, t_next, h_try, y, y1, k, f1, direction)
        record.attempt(t_n, h_try, ratio, accepted, evaluations(tableau, accepted, extra))
        h_new = next_step(h_try, ratio, q, rejected_last)
        last, nonfinite = (error, y, y1), count_nonfinite(nonfinite, ratio)
        rejected_last = not accepted
        if accepted:
            t_n, y, k1, carried = t_next, y1, f1, carried_step(h, h_try, h_new)
        h = h_new
        del k                         # free this trial's stages before the next one's
    return record.solution(tableau, direction, y0, carried)


#: Steps whose outputs wait for dense output hold at most this many bytes of states and
#: stages; then their outputs are computed, in one batch (:meth:`Recorder.flush`). Small
#: states batch a whole solve's outputs; a state of ~0.4 MiB or more (10 arrays per
#: step) has each step's outputs computed as the step is accepted.
PENDING_BYTES = 4 * 2**20


def state_bytes(y):
    """Bytes of one state like ``y`` (an array or tree), at most: 8 for every entry.
    A step's outputs need ``(len(k) + 3) * state_bytes(y)``: its stages, y0, y1 and f1."""
    return 8 * sum(int(np.size(leaf)) for leaf in tree_leaves(y))


class Recorder:
    """What the shared adaptive loop keeps besides the state.

    The outputs reached (blocks of states, computed by dense output a batch of steps at
    a time: ``pending``), the next output index ``i_out``, the counts, the accepted step
    points (``grid``) and the states there (``states``), every trial step (``trace``) and
    the dense steps.
    """

    def __init__(self, t, y0, nfe, keep_grid, trace, dense, keep_states=False):
        self.t, self.i_out, self.blocks = t, 1, [expand(y0)]
        self.pending, self.pending_bytes = [], 0
        self.state_bytes = state_bytes(y0)
        self.nfe, self.n_attempted, self.n_accepted = nfe, 0, 0
        self.grid = [float(t[0])] if keep_grid else None
        self.states = [y0] if keep_states else None
        self.trace = [] if trace else None
        self.steps = [] if dense else None

    def attempt(self, t_n, h, ratio, accepted, nfe):
        """Count a trial step and the evaluations of f it cost."""
        self.nfe, self.n_attempted = self.nfe + nfe, self.n_attempted + 1
        self.n_accepted += 1 if accepted else 0
        if self.trace is not None:
            self.trace.append(StepRecord(t_n, h, ratio, accepted))

    def accept(self, tableau, t_n, t_next, h, y, y1, k, f1, direction):
        """The outputs in (t_n, t_next] (pending, :meth:`flush`); the step point and dense step."""
        i_new = next_output(self.t, self.i_out, t_next, direction)
        step = None
        if i_new > self.i_out or self.steps is not None:
            step = DenseStep(t_n, t_next, h, y, y1, k, f1)
        if i_new > self.i_out:
            self.pending.append((step, i_new - self.i_out))
            self.pending_bytes += (len(k) + 3) * self.state_bytes
            self.i_out = i_new
            if self.pending_bytes > PENDING_BYTES:
                self.flush(tableau)
        if self.grid is not None:
            self.grid.append(t_next)
        if self.states is not None:
            self.states.append(y1)
        if self.steps is not None:
            self.steps.append(step)

    def flush(self, tableau):
        """The outputs of the pending steps, by dense output in one batch
        (:func:`~refnode.dense_output.interpolate_steps`)."""
        if not self.pending:
            return
        steps, counts = zip(*self.pending)
        times = self.t[self.i_out - sum(counts):self.i_out]       # the pending outputs
        self.blocks.extend(interpolate_steps(tableau, steps, times, counts))
        self.pending, self.pending_bytes = [], 0

    def solution(self, tableau, direction, y0, next_step):
        self.flush(tableau)
        stats = dict(nfe=self.nfe, n_steps=self.n_attempted, n_accepted=self.n_accepted,
                     n_rejected=self.n_attempted - self.n_accepted)
        dense = None
        if self.steps is not None:
            dense = DenseSolution(tableau, self.steps, direction, float(self.t[0]), y0)
        return Solution(t=self.t, z=concatenate(self.blocks), stats=stats, trace=self.trace,
                        grid=self.grid, dense=dense, next_step=next_step, states=self.states)


def next_output(t, i_out, t_next, direction):
    """The index of the first output after t_next: ``i_out`` if the step reaches none.

    An output exactly at the step's end gets θ = 1.0
    (:func:`~refnode.dense_output.step_fraction`), which dense output maps to y1 itself.
    """
    if (t[i_out] - t_next) * direction > 0:           # the next output lies beyond the step
        return i_out
    return int(outputs_reached(t, t_next, direction))
