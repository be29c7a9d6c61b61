"""SIGTERM and SIGINT end a run visibly: an exception that names the signal, caught by train.py.

Lightning turns SIGTERM into a SystemExit with status 0 (a scheduler or an `&&` chain takes a killed run for
a finished one) and Ctrl+C into status 1 after its own message. Inside `signals_raise()` both signals raise
`RunInterrupted` instead, which Lightning's loops re-raise unchanged (it is not a KeyboardInterrupt), so the
fold in flight is abandoned before its predictions are written and train.py can say which fold it was.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(BaseException):
    """The run received SIGTERM or SIGINT. `fold` is set to the fold's name by the fold loop when one ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.fold: str | None = None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        # The shell's convention for "killed by signal N": 143 for SIGTERM, 130 for SIGINT.
        return 128 + self.signum


def _raise(signum: int, frame) -> None:
    raise RunInterrupted(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise RunInterrupted; the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
