"""SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) stop a run cleanly: the call in
flight finishes, the current step is saved, and the process exits 0 or 130 with one
sentence; the next run resumes there as if it had never stopped."""
from __future__ import annotations

import signal
import threading

from train import distributed

EXIT_CODES = {signal.SIGTERM: 0, signal.SIGINT: 130}


class Preempted(Exception):
    """Raised by the training loop once the stop a signal asked for is saved."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.step, self.exit_code = step, EXIT_CODES[signum]


class StopSignals:
    """While active, SIGTERM and SIGINT only set `requested`; a second SIGINT interrupts
    at once, as Ctrl-C normally does."""

    def __init__(self):
        self.requested, self.previous = None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals reach it alone
            for signum in EXIT_CODES:
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum

    def agreed(self) -> int | None:
        """The signal to stop for now, agreed by every host (the same call on each)."""
        return distributed.agreed_stop(self.requested)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False
