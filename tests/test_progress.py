"""The progress line writes plain lines to a log file (a job under nohup), throttled, and ends with the last state."""

from __future__ import annotations

import io

from dynlearn.progress import ProgressLine


def test_plain_lines_when_the_output_is_not_a_terminal():
    out = io.StringIO()  # isatty() is False, as for a file or a pipe
    with ProgressLine(True, "fit ensemble", 10, log_every_s=3600.0, stream=out) as line:
        for epoch in range(1, 6):
            line.update(epoch, f"epoch {epoch}")
    lines = out.getvalue().splitlines()
    # the first update at once, the rest held back by the interval, the last state when the loop ends
    assert len(lines) == 2, lines
    assert "fit ensemble 1/10: epoch 1" in lines[0] and "fit ensemble 5/10: epoch 5" in lines[1]
    assert lines[1].startswith("[") and "elapsed)" in lines[1]


def test_every_update_with_no_interval_and_nothing_when_quiet():
    out = io.StringIO()
    with ProgressLine(True, "fit", None, log_every_s=0.0, stream=out) as line:
        for step in range(3):
            line.update(step, "x")
    assert [s.split("] ", 1)[1].split(" (")[0] for s in out.getvalue().splitlines()] == ["fit 0: x", "fit 1: x", "fit 2: x"]
    quiet = io.StringIO()
    with ProgressLine(False, "fit", 3, stream=quiet) as line:
        line.update(1, "x")
    assert quiet.getvalue() == ""
