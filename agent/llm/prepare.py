"""One-time preparation steps: said on screen with an estimate and a bar, and locked.

The first start assembles the model file and prefills the system prompt; later starts reuse
both. Such a step must never be silent (the user sees what it is doing and for how long)
and never race: two first starts at once take turns on a file lock, the second then finds
the work done. The bar is our own, on stderr, one line; when stderr is not a terminal it
prints a start line and an end line instead of redrawing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from core.errors import SetupError

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1  # a terminal redraw at most this often
LOCK_TIMEOUT_S = 900.0  # a first start elsewhere takes well under a minute; 15 min is stuck


class Progress:
    """One line on stderr: `preparing ... once (~N s): what [####----] 40% 2.1 s`.

    Args:
        what: what is being done, e.g. "prefilling its 1010-token system prompt".
        total: units of work (bytes, tokens); `update(n)` adds n done.
        estimate_s: the expected duration, shown up front.
        stream: where to write (default stderr).
    """

    def __init__(
        self, what: str, total: int, estimate_s: float, stream: TextIO | None = None
    ) -> None:
        self.what, self.total, self.estimate_s = what, max(1, total), estimate_s
        self.stream = stream or sys.stderr
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = self._drawn = 0.0

    def __enter__(self) -> Progress:
        self._started = time.perf_counter()
        if self._tty:
            self._draw(force=True)
        else:
            print(f"{self._title()}...", file=self.stream, flush=True)
        return self

    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        if self._tty:
            self._draw()

    def __exit__(self, kind, value, traceback) -> None:
        seconds = time.perf_counter() - self._started
        outcome = "done" if kind is None else "stopped"
        if self._tty:
            self._draw(force=True)
            self.stream.write("\n")
        print(f"{self._title(estimate=False)}: {outcome} in {seconds:.1f} s", file=self.stream)
        self.stream.flush()

    def _title(self, estimate: bool = True) -> str:
        head = "preparing the planner model once"
        if estimate:
            head += f" (~{max(1, round(self.estimate_s))} s)"
        return f"{head}: {self.what}"

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_SECONDS:
            return
        self._drawn = now
        filled = round(BAR_WIDTH * self.done / self.total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        share = 100 * self.done // self.total
        line = f"\r{self._title()} [{bar}] {share:3d}% {now - self._started:4.1f} s"
        self.stream.write(line)
        self.stream.flush()


@contextlib.contextmanager
def exclusive(lock_path: Path, what: str, stream: TextIO | None = None) -> Iterator[None]:
    """Hold a file lock for a one-time step; say so when another process holds it.

    Raises:
        SetupError: the lock was not released within `LOCK_TIMEOUT_S`.
    """
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(
            f"waiting for another autoglm process that is {what} (lock {lock_path})...",
            file=stream or sys.stderr,
            flush=True,
        )
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise SetupError(
                f"Another process has been {what} for over {LOCK_TIMEOUT_S:.0f} s and still "
                f"holds {lock_path}. If no autoglm process is running, delete that file."
            ) from None
    try:
        yield
    finally:
        lock.release()
