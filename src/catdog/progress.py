"""Progress of a long step (pack, predict, evaluate): the one reporter, for terminals and for logs alike.

On a terminal it is a live rich bar (done/total, images/s, elapsed, time left). When stderr is not a
terminal (CI logs, nohup, a notebook's captured stream) a redrawn bar is noise, so it prints a plain line
instead, at most every `interval` seconds and once when a task ends:

    predict: 3,200/12,500 images (26%), 265 images/s, 0:00:35 left
    predict: 12,500/12,500 images (100%), 260 images/s, done in 0:00:48

    with progress.reporter(enabled) as report:
        advance = report.task("check", total)
        advance(32)                      # after each chunk of work

`bar(total, description)` is the same for a single task. The clock and the stream can be injected, so the
line mode is tested without sleeping.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

INTERVAL = 10.0  # seconds between two lines in a log: often enough to see it move, rare enough to read


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _LineTask:
    """One task in line mode: counts, and prints when `interval` has passed since the last line or at the end."""

    def __init__(self, description: str, total: int, stream: TextIO, clock: Callable[[], float], interval: float,
                 started: float | None = None):
        self.description, self.total, self.stream, self.clock, self.interval = description, total, stream, clock, interval
        self.last = clock()
        self.start = self.last if started is None else started
        self.done = 0
        self.ended = False

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if self.total and self.done >= self.total:
            self.end()
        elif now - self.last >= self.interval:
            self.last = now
            self._print(now, final=False)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._print(self.clock(), final=True)

    def _print(self, now: float, final: bool) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        line = f"{self.description}: {self.done:,}/{self.total:,} images{percent}, {rate:,.0f} images/s, "
        if final:
            line += f"done in {_duration(elapsed)}"
        elif rate > 0:
            line += f"{_duration((self.total - self.done) / rate)} left"
        else:
            line += "time left unknown"
        print(line, file=self.stream, flush=True)


class Reporter:
    """Hands out one `advance(n)` callable per task; see the module docstring."""

    def __init__(self, mode: str, stream: TextIO, clock: Callable[[], float], interval: float, bar=None):
        self.mode, self.stream, self.clock, self.interval, self._bar = mode, stream, clock, interval, bar
        self._tasks: list[_LineTask] = []

    def task(self, description: str, total: int, started: float | None = None) -> Callable[[int], None]:
        """advance(n) for a new task. `started` (a time of `clock`): when the work began, if before this call
        (pack's checks run while TensorFlow imports), so that the rate and the duration count from there."""
        if self.mode == "bar":
            task_id = self._bar.add_task(description, total=total)
            if started is not None:
                next(t for t in self._bar.tasks if t.id == task_id).start_time = started  # rich's clock: monotonic too
            return lambda n: self._bar.advance(task_id, n)
        if self.mode == "lines":
            line_task = _LineTask(description, total, self.stream, self.clock, self.interval, started)
            self._tasks.append(line_task)
            return line_task.advance
        return lambda n: None

    def _close(self) -> None:
        for line_task in self._tasks:
            line_task.end()


def _rich_bar(stream: TextIO, transient: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            # when done, the average since the start (rich's own speed is over its last samples: a task whose
            # work was done before it was shown would read millions of images/s)
            speed = task.completed / task.elapsed if task.finished and task.elapsed else task.speed
            return Text(f"{speed:,.0f} images/s" if speed else "… images/s")

    console = Console(file=stream)
    return console.is_terminal, Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                                         RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                                         transient=transient)


@contextmanager
def reporter(enabled: bool = True, *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
             interval: float = INTERVAL, terminal: bool | None = None, transient: bool = False) -> Iterator[Reporter]:
    """A Reporter on `stream` (default: stderr): a bar on a terminal, lines otherwise, nothing if not enabled.

    `terminal` overrides the detection (tests); by default rich decides, which also honours FORCE_COLOR/TTY.
    `transient`: the bar disappears when done (for steps inside a longer one, e.g. caching features in train).
    """
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        yield Reporter("off", stream, clock, interval)
        return
    is_terminal, bar = _rich_bar(stream, transient) if terminal is not False else (False, None)
    if terminal is True or (terminal is None and is_terminal):
        with bar:
            yield Reporter("bar", stream, clock, interval, bar)
        return
    report = Reporter("lines", stream, clock, interval)
    yield report  # on an exception no closing line: the error message is the last word
    report._close()


@contextmanager
def bar(total: int, description: str, enabled: bool = True, **kwargs) -> Iterator[Callable[[int], None]]:
    """One task's reporter; yields advance(n). Keywords as for `reporter`."""
    with reporter(enabled, **kwargs) as report:
        yield report.task(description, total)
