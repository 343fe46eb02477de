"""A minimal progress bar with live metrics, no dependencies.

    bar = progress(range(n_iters), desc="train")
    for i in bar:
        loss, nfe = step()
        bar.set(loss=loss, nfe=nfe)

On a terminal the bar is one line redrawn in place with ``'\\r'``; anywhere else (CI logs,
files, pipes) it prints a plain line now and then, so logs stay short and readable.
Drawing is throttled either way, so a tight loop pays almost nothing for it.
"""

import sys
import time

from .interrupt import raise_if_lost

# Seconds between redraws on a terminal (10 per second looks live and costs nothing).
TTY_INTERVAL_S = 0.1
# Seconds between plain lines in a log that is not a terminal.
LOG_INTERVAL_S = 30.0


def _format_value(value):
    """Integers (e.g. NFE) in full, other numbers to 4 significant digits."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(value, float) or kind == "f":
        return f"{float(value):.4g}"
    if kind in ("i", "u"):
        return str(int(value))
    return str(value)


def _format_time(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Progress:
    """Iterate over ``iterable`` and report progress; see :func:`progress`."""

    def __init__(self, iterable, total, desc, enabled, stream, interval_s, clock):
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.stream = stream
        self.is_tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (
            TTY_INTERVAL_S if self.is_tty else LOG_INTERVAL_S)
        self.clock = clock
        self.n = 0
        self.metrics = {}
        self.start_time = clock()
        self.last_draw = None  # clock time of the last draw
        self.drawn_n = None  # self.n at the last draw
        self.closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                raise_if_lost()   # a Ctrl-C Python lost in a finalizer stops the loop here
                self.n += 1
                self._maybe_draw()
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def set(self, **metrics):
        """Show these metrics (e.g. ``loss=0.31, nfe=26``) from the next redraw on."""
        self.metrics.update(metrics)

    def line(self):
        """The text of the bar now: ``desc  n/total [ pct%] elapsed<eta  rate  metrics``."""
        elapsed = self.clock() - self.start_time
        parts = [self.desc] if self.desc else []
        if self.total:
            fraction = self.n / self.total
            parts.append(f"{self.n}/{self.total} [{100 * fraction:3.0f}%]")
            eta = elapsed / fraction - elapsed if self.n else 0.0
            parts.append(f"{_format_time(elapsed)}<{_format_time(eta)}")
        else:
            parts.append(f"{self.n} it {_format_time(elapsed)}")
        if elapsed > 0 and self.n:
            parts.append(f"{self.n / elapsed:.3g} it/s")
        parts.extend(f"{k}={_format_value(v)}" for k, v in self.metrics.items())
        return "  ".join(parts)

    def _maybe_draw(self):
        now = self.clock()
        if self.last_draw is not None and now - self.last_draw < self.interval_s:
            return
        self._draw()
        self.last_draw = now

    def _draw(self):
        self.drawn_n = self.n
        if not self.enabled:
            return
        if self.is_tty:
            self.stream.write("\r" + self.line() + "\x1b[K")  # \x1b[K clears the old tail
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self):
        """Draw the final state (once) and end the line on a terminal."""
        if self.closed:
            return
        self.closed = True
        if self.drawn_n != self.n or self.is_tty:
            self._draw()
        if self.enabled and self.is_tty:
            self.stream.write("\n")
            self.stream.flush()


def progress(iterable, total=None, desc="", enabled=True, stream=None, interval_s=None,
             clock=time.monotonic):
    """Wrap ``iterable`` in a progress bar.

    Parameters
    ----------
    iterable : iterable
    total : int, optional
        Number of items; taken from ``len(iterable)`` when it has one.
    desc : str
        Label at the start of the line.
    enabled : bool
        ``False`` turns all output off (the loop itself is unchanged).
    stream : file, optional
        Where to write; ``sys.stderr`` by default (looked up at call time).
    interval_s : float, optional
        Minimum seconds between draws; :data:`TTY_INTERVAL_S` on a terminal,
        :data:`LOG_INTERVAL_S` otherwise.
    clock : callable
        Returns seconds; :func:`time.monotonic` (tests pass a fake clock).

    Returns
    -------
    Progress
        Iterate over it; call ``.set(loss=..., nfe=...)`` to show metrics.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    stream = sys.stderr if stream is None else stream
    return Progress(iterable, total, desc, enabled, stream, interval_s, clock)
