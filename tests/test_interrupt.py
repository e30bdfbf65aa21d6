"""Graceful stops: the first SIGTERM / Ctrl-C becomes a request, a second Ctrl-C stops at once, handlers are restored."""

import os
import signal

import pytest

from dynlearn import interrupt


def test_signals_become_a_request_inside_the_context_only():
    before = signal.getsignal(signal.SIGTERM)
    with interrupt.graceful_stop():
        assert not interrupt.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.requested()
        with interrupt.graceful_stop():  # nested: the outer request stands
            assert interrupt.requested()
        assert interrupt.requested()
    assert not interrupt.requested() and signal.getsignal(signal.SIGTERM) is before


def test_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # (SIG_IGN in a process started in the background by a shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), interrupt.graceful_stop():
            os.kill(os.getpid(), signal.SIGINT)
            assert interrupt.requested()
            os.kill(os.getpid(), signal.SIGINT)
        assert not interrupt.requested() and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_stopped_says_how_to_resume(tmp_path):
    assert "--resume" in str(interrupt.Stopped(tmp_path, 1200)) and "1,200" in str(interrupt.Stopped(tmp_path, 1200))
    assert "nothing" in str(interrupt.Stopped(tmp_path, 0))
