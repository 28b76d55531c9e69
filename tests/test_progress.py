"""catdog.progress in line mode (stderr not a terminal): when lines appear and what they say, on a fake clock."""

import io

from catdog import progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_line_mode_prints_every_interval_and_at_the_end():
    clock, stream = FakeClock(), io.StringIO()
    with progress.reporter(True, stream=stream, clock=clock, interval=10, terminal=False) as report:
        advance = report.task("predict", 1000)
        clock.now += 4
        advance(100)  # 4 s: too soon for a line
        assert stream.getvalue() == ""
        clock.now += 6
        advance(150)  # 10 s since start: first line, 250 done at 25/s -> 750 left = 30 s
        clock.now += 5
        advance(250)  # 5 s after the last line: silent
        clock.now += 15
        advance(500)  # reaches the total: the closing line, at once
    lines = stream.getvalue().splitlines()
    assert lines == [
        "predict: 250/1,000 images (25%), 25 images/s, 0:00:30 left",
        "predict: 1,000/1,000 images (100%), 33 images/s, done in 0:00:30",
    ]


def test_unfinished_task_gets_its_closing_line_on_exit_and_tasks_are_separate():
    clock, stream = FakeClock(), io.StringIO()
    with progress.reporter(True, stream=stream, clock=clock, interval=10, terminal=False) as report:
        check = report.task("check", 10)
        clock.now += 2
        check(10)
        write = report.task("write", 20)
        clock.now += 3
        write(5)
    assert stream.getvalue().splitlines() == [
        "check: 10/10 images (100%), 5 images/s, done in 0:00:02",
        "write: 5/20 images (25%), 2 images/s, done in 0:00:03",
    ]


def test_no_closing_line_after_an_error_and_nothing_when_disabled():
    clock, stream = FakeClock(), io.StringIO()
    try:
        with progress.bar(10, "predict", stream=stream, clock=clock, terminal=False) as advance:
            advance(3)
            raise ValueError("boom")
    except ValueError:
        pass
    assert stream.getvalue() == ""
    with progress.bar(10, "predict", enabled=False, stream=stream, clock=clock, terminal=False) as advance:
        advance(10)
    assert stream.getvalue() == ""


def test_terminal_mode_is_a_bar_not_lines():
    stream = io.StringIO()
    with progress.bar(4, "pack", stream=stream, terminal=True) as advance:
        advance(4)
    assert "images/s" in stream.getvalue() and "done in" not in stream.getvalue()


def test_a_task_shown_after_its_work_began_counts_from_when_it_began():
    """pack's checks run while TensorFlow imports and are shown after: the rate is over the real time."""
    clock, stream = FakeClock(), io.StringIO()
    with progress.reporter(True, stream=stream, clock=clock, interval=10, terminal=False) as report:
        started = clock()
        clock.now += 8
        advance = report.task("check", 400, started)
        advance(400)
    assert stream.getvalue().splitlines() == ["check: 400/400 images (100%), 50 images/s, done in 0:00:08"]


def test_the_bar_of_a_task_shown_late_reports_its_average_rate_since_it_began():
    import time

    stream = io.StringIO()
    with progress.reporter(True, stream=stream, terminal=True) as report:
        advance = report.task("check", 400, started=time.monotonic() - 8)
        advance(400)
    final = [line for line in stream.getvalue().splitlines() if "check" in line][-1]
    rate = float(final.split(" images/s")[0].split()[-1].replace(",", ""))
    assert "400/400" in final and 40 <= rate <= 50, final  # 400 in 8 s (and the moments this test took)
