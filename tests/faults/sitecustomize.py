"""Fault injection for the kill tests: loaded by Python at start-up when a test puts this folder on
PYTHONPATH (see ``fault_env`` in tests/cli.py); production code reads no test switch.

``RESNET_EXP_FAULT_KILL_AT=<point>:<n>`` makes the training process SIGKILL itself at an exact
moment, as the OOM killer or a lost node would, so kill-and-resume tests need no timing:

- ``step:N``: after global step N and its step checkpoint, if one was due;
- ``eval:E``: between the validation and the test evaluation of epoch E;
- ``metrics:E``: after epoch E's metrics row is written, before its checkpoint;
- ``epoch:E``: after epoch E's checkpoint.

``RESNET_EXP_FAULT_KILL_JOB=<override>`` SIGKILLs, as it starts training, the sweep job whose
overrides include ``<override>`` (e.g. ``seed=2``); ``RESNET_EXP_FAULT_FAIL_JOB=<override>`` makes
it raise ``RuntimeError("injected failure")`` there instead, as a bug in a job would.

``RESNET_EXP_FAULT_RAISE_AT=start`` raises an unforeseen ``RuntimeError`` after the data is read,
just before the run resumes or starts in its folder (a bug we did not foresee, at the latest moment
that must still leave an existing folder byte-identical).

``RESNET_EXP_FAULT_SLEEP_AT=<point>`` prints ``fault injection: sleeping in <point>`` on stderr and
sleeps (60 s) at a moment of start-up, so a test can send a signal there: ``preflight`` (every job
composes, nothing written yet) or ``job`` (Hydra has written the job's ``.hydra/``, before the run's
own signal handlers are in place).
"""

from __future__ import annotations

import os

KILL_AT = os.environ.get("RESNET_EXP_FAULT_KILL_AT", "")
KILL_JOB = os.environ.get("RESNET_EXP_FAULT_KILL_JOB", "")
FAIL_JOB = os.environ.get("RESNET_EXP_FAULT_FAIL_JOB", "")
RAISE_AT = os.environ.get("RESNET_EXP_FAULT_RAISE_AT", "")
SLEEP_AT = os.environ.get("RESNET_EXP_FAULT_SLEEP_AT", "")


def _die(why: str) -> None:
    import logging
    import signal
    import sys

    print(f"fault injection: SIGKILL {why}", file=sys.stderr, flush=True)
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)


def _install() -> None:
    from resnet_exp.training.loop import Trainer

    point, _, number = KILL_AT.partition(":")
    at = int(number) if number else -1
    end_of_step, evaluate = Trainer._end_of_step, Trainer.evaluate
    checkpoint_epoch, fit = Trainer._checkpoint_epoch, Trainer.fit

    def _end_of_step_then_die(self, acc):
        going_on = end_of_step(self, acc)
        if point == "step" and self.step == at:
            _die(KILL_AT)
        return going_on

    def _evaluate_or_die(self, split):
        if point == "eval" and split == "test" and self.epoch + 1 == at:
            _die(KILL_AT)
        return evaluate(self, split)

    def _checkpoint_epoch_with_deaths(self, improved):
        if point == "metrics" and self.epoch == at:
            _die(KILL_AT)
        checkpoint_epoch(self, improved)
        if point == "epoch" and self.epoch == at:
            _die(KILL_AT)

    def _fit_or_die(self, rows=None):
        from hydra.core.hydra_config import HydraConfig

        if KILL_JOB and KILL_JOB in HydraConfig.get().overrides.task:
            _die(f"the job with {KILL_JOB}")
        if FAIL_JOB and FAIL_JOB in HydraConfig.get().overrides.task:
            raise RuntimeError(f"injected failure in the job with {FAIL_JOB}")
        return fit(self, rows)

    Trainer._end_of_step = _end_of_step_then_die
    Trainer.evaluate = _evaluate_or_die
    Trainer._checkpoint_epoch = _checkpoint_epoch_with_deaths
    Trainer.fit = _fit_or_die


def _install_raise() -> None:
    from resnet_exp.training import resume

    def _start_or_raise(*args, **kwargs):
        raise RuntimeError("injected fault: an error nobody foresaw, after the data was read")

    resume.start_or_resume = _start_or_raise


def _install_sleep() -> None:
    import sys
    import time

    from resnet_exp.hydra_glue import folders, preflight

    def sleeping(real):
        def wrapper(*args, **kwargs):
            print(f"fault injection: sleeping in {SLEEP_AT}", file=sys.stderr, flush=True)
            time.sleep(60)
            return real(*args, **kwargs)

        return wrapper

    if SLEEP_AT == "preflight":
        preflight.preflight = sleeping(preflight.preflight)
    elif SLEEP_AT == "job":
        folders.job_folder_lock = sleeping(folders.job_folder_lock)


if KILL_AT or KILL_JOB or FAIL_JOB:
    _install()
if RAISE_AT == "start":
    _install_raise()
if SLEEP_AT:
    _install_sleep()
