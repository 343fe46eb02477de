"""refnode.interrupt: a Ctrl-C told from code's own KeyboardInterrupt, and never lost.

A Ctrl-C that arrives while a finalizer runs is the case Python itself drops ("Exception
ignored in ..."): these tests put it there on purpose, with an object whose ``__del__``
calls the installed SIGINT handler as the signal would.
"""

import signal
import sys
import threading

import pytest

from refnode.interrupt import InterruptWatch, raise_if_lost
from refnode.progress import progress

pytestmark = pytest.mark.cli


class CtrlCInFinalizer:
    """Dropping the last reference runs ``__del__``, which receives a Ctrl-C there."""

    def __del__(self):
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)


class OwnInterruptInFinalizer:
    """A finalizer that raises KeyboardInterrupt itself (no signal)."""

    def __del__(self):
        raise KeyboardInterrupt


def lose_a_ctrl_c():
    CtrlCInFinalizer()          # created and dropped at once: its __del__ runs here


def test_a_ctrl_c_lost_in_a_finalizer_is_kept_quiet_and_raised_again(capsys):
    with InterruptWatch() as watch:
        lose_a_ctrl_c()                       # Python would print it and go on
        assert watch.received and watch.lost
        with pytest.raises(KeyboardInterrupt):
            raise_if_lost()
        raise_if_lost()                       # raised once, not at every later check
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_ctrl_c_that_propagated_is_not_raised_again():
    """``refnode verify`` catches a real Ctrl-C and reports it: no second interrupt after."""
    with InterruptWatch() as watch:
        with pytest.raises(KeyboardInterrupt):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        assert watch.received and not watch.lost
        raise_if_lost()


def test_a_progress_loop_stops_at_the_item_after_a_lost_ctrl_c():
    done = []
    with InterruptWatch(), pytest.raises(KeyboardInterrupt):
        for i in progress(range(100), enabled=False):
            done.append(i)
            if i == 3:
                lose_a_ctrl_c()
    assert done == [0, 1, 2, 3]


def test_without_a_ctrl_c_nothing_is_raised_and_the_loop_runs_to_its_end():
    with InterruptWatch() as watch:
        assert list(progress(range(5), enabled=False)) == [0, 1, 2, 3, 4]
        raise_if_lost()
    assert not watch.received


def test_code_raising_keyboard_interrupt_in_a_finalizer_is_not_a_ctrl_c():
    """Without a signal the unraisable exception goes to the hook that was there before."""
    seen = []
    previous, sys.unraisablehook = sys.unraisablehook, lambda u: seen.append(u.exc_type)
    try:
        with InterruptWatch() as watch:
            OwnInterruptInFinalizer()
            raise_if_lost()
    finally:
        sys.unraisablehook = previous
    assert seen == [KeyboardInterrupt] and not watch.received


def test_other_unraisable_exceptions_still_reach_the_previous_hook():
    class Broken:
        def __del__(self):
            raise ValueError("a bug in a finalizer")

    seen = []
    previous, sys.unraisablehook = sys.unraisablehook, lambda u: seen.append(u.exc_type)
    try:
        with InterruptWatch():
            lose_a_ctrl_c()
            Broken()
    finally:
        sys.unraisablehook = previous
    assert seen == [ValueError]


def test_the_watch_restores_the_handler_and_the_hook():
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    with InterruptWatch() as watch:
        assert watch.active and signal.getsignal(signal.SIGINT) != handler
        assert sys.unraisablehook != hook
    assert signal.getsignal(signal.SIGINT) == handler and sys.unraisablehook == hook
    raise_if_lost()                       # nothing entered: nothing to raise


def test_an_ignored_sigint_stays_ignored():
    """A shell's background job has SIGINT ignored: the watch installs nothing."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with InterruptWatch() as watch:
            assert not watch.active and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_watch_is_inactive():
    states = []

    def enter():
        with InterruptWatch() as watch:
            states.append(watch.active)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert states == [False]
