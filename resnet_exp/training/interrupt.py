"""Ctrl-C, SIGTERM and SIGHUP end a run cleanly: at the next step boundary, with a checkpoint.

A handler only sets a flag the loop reads between steps. Outside the step loop (setup,
evaluation, saving) and on a second signal it raises at once: the last checkpoint on disk was
written atomically, so it is intact either way.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from resnet_exp.tracking.record import INTERRUPTED, TERMINATED

# What the record says for each signal, and the shell's exit status for it (128 + signal number).
# SIGHUP (the terminal or SSH session went away) is a request to end from outside, like SIGTERM.
STATUS = {signal.SIGINT: INTERRUPTED, signal.SIGTERM: TERMINATED, signal.SIGHUP: TERMINATED}
# Signals that end start-up the way Ctrl-C does (Python's own SIGINT handler already raises).
START_UP = (signal.SIGTERM, signal.SIGHUP)


def _end_start_up(signum: int, frame: FrameType | None) -> None:
    """Start-up's handler: the first signal raises, so ``finally`` blocks put an existing run
    folder back; a second one, while that happens, is ignored (the process is ending anyway)."""
    for other in START_UP:
        if signal.getsignal(other) is _end_start_up:
            signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def end_start_up_on_signals() -> None:
    """Make SIGTERM and SIGHUP before the run's own handlers are in place end the process as
    Ctrl-C does (an exception, caught by the entry point), not silently; only where Python's
    default disposition is in place (submitit's SIGTERM handler and ``nohup`` are left alone)."""
    for signum in START_UP:
        try:
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _end_start_up)
        except ValueError:  # not the main thread
            return


# Handlers :class:`StopFlag` replaces; any other was installed by someone else and is kept.
_DEFAULTS = (signal.SIG_DFL, signal.default_int_handler, None, _end_start_up)


class Interrupted(BaseException):
    """The run was stopped by a signal. A BaseException, like KeyboardInterrupt, so no
    ``except Exception`` on the way up (W&B, data loading) mistakes it for a failure."""

    def __init__(self, signum: int, checkpoint: str | None = None) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        super().__init__(signal.Signals(signum).name)

    @property
    def status(self) -> str:
        return STATUS.get(self.signum, INTERRUPTED)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class StopFlag:
    """Installs SIGINT/SIGTERM handlers for a ``with`` block; ``signum`` is the signal seen."""

    def __init__(self) -> None:
        self.signum: int | None = None
        # True while the training loop checks ``signum`` after every step (then the first signal
        # only sets the flag); False elsewhere, where a signal stops the run immediately.
        self.polled = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        if not (first and self.polled):
            raise Interrupted(signum)

    def install(self) -> None:
        """(Re)install the handlers; a no-op outside the main thread, where Python forbids it. A
        signal whose handler is not Python's default when first installed is left alone: submitit
        handles SIGTERM itself under SLURM to requeue the job."""
        for signum in STATUS:
            try:
                current = signal.getsignal(signum)
                if signum not in self._previous and current not in _DEFAULTS:
                    continue
                if current != self._handle:
                    self._previous.setdefault(signum, current)
                    signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. a launcher's worker thread)
                return

    def __enter__(self) -> StopFlag:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
