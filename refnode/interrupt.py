"""Ctrl-C, told apart from code's own KeyboardInterrupt, and never lost.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens
to be. Two things can go wrong with that, and an entered :class:`InterruptWatch` handles
both:

* Code may raise ``KeyboardInterrupt`` itself. The watch chains a SIGINT handler that
  sets ``received`` before the previous handler raises, so a real Ctrl-C can be told
  from code's own (``refnode verify`` reports the second as the verified code's doing).
* When the signal arrives while a finalizer runs (a ``__del__``, a weakref callback, the
  garbage collector), Python cannot propagate the exception: it prints
  "Exception ignored in ..." and the program goes on as if nothing had been pressed.
  While a watch is entered such a lost Ctrl-C is not printed but kept (``lost``), and
  :func:`raise_if_lost`, which long loops call at every item
  (:class:`refnode.progress.Progress`) and ``refnode`` calls when a command returns,
  raises it again (once) where it can propagate.

Where no handler can be installed (another thread than the main one, SIGINT ignored by
the parent, as for a shell's background job) the watch stays inactive: ``active`` is
False and every ``KeyboardInterrupt`` is taken for a Ctrl-C.
"""

import signal
import sys
import threading

#: The watches entered now, innermost last.
_entered = []


class InterruptWatch:
    """Watches for Ctrl-C while it is entered; see the module's docstring."""

    def __init__(self):
        self.received, self.lost, self.active = False, False, False
        self._previous_handler, self._previous_hook = None, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous_handler, self.active = previous, True
                signal.signal(signal.SIGINT, self._on_sigint)
                self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._on_unraisable
        _entered.append(self)
        return self

    def __exit__(self, *exc):
        _entered.remove(self)
        if self.active:
            signal.signal(signal.SIGINT, self._previous_handler)
            sys.unraisablehook = self._previous_hook
        return False

    def _on_sigint(self, signum, frame):
        self.received = True
        self._previous_handler(signum, frame)

    def _on_unraisable(self, unraisable):
        """A Ctrl-C lost in a finalizer is kept quiet (:func:`raise_if_lost` raises it
        again); anything else goes to the hook that was there before."""
        if self.received and issubclass(unraisable.exc_type, KeyboardInterrupt):
            self.lost = True
        else:
            self._previous_hook(unraisable)


def raise_if_lost():
    """Raise ``KeyboardInterrupt`` once for a Ctrl-C that Python lost in a finalizer.

    Called where stopping is safe: between the items of a long loop, and when a
    ``refnode`` command returns. A Ctrl-C that propagated as usual is not raised twice.
    Without a lost Ctrl-C it costs a loop over the entered watches (usually one).
    """
    for watch in _entered:
        if watch.lost:
            watch.lost = False
            raise KeyboardInterrupt
