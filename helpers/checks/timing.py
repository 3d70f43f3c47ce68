"""The time limit on a learner's function (part of the checker engine, see ``engine.py``).

A checker never hangs: each case may take ``TIME_LIMIT`` seconds, and all the cases of one
checker call together ``TOTAL_TIME_FACTOR`` times that. The settings live here, in this one
module, and are read each time a checker runs.

On the main thread (Linux, macOS) the SIGALRM signal interrupts the learner's code when its
time is up. Elsewhere (Windows, or a checker called from another thread) the code runs in a
helper thread instead, and the checker stops waiting for it.
"""

import signal
import sys
import threading
import time

TIME_LIMIT = 2.0  # seconds a learner's function may take on one case (read each time a checker runs)
TOTAL_TIME_FACTOR = 3  # all the cases of one checker together may take this many times TIME_LIMIT
RETRY_EVERY = 0.001  # seconds: once time is up, the learner's code is stopped again this often until it ends


class _TimeLimit(BaseException):
    """Raised inside the learner's code when it runs too long (BaseException, so a bare
    ``except Exception`` in their code cannot swallow it)."""


def _outcome_of(call):
    """Run ``call()``; return ``("ok", value)`` or ``("raised", exception)``.

    Every exception is returned, even ``SystemExit`` (from ``sys.exit()``) and
    ``KeyboardInterrupt``: ``run_checks`` reports the first and raises the second again.
    Only the time limit's own ``_TimeLimit`` passes through.
    """
    try:
        return "ok", call()
    except _TimeLimit:
        raise
    except BaseException as exc:  # the learner's code may raise anything at all
        return "raised", exc


def learner_globals(fn):
    """The global names of the module (or notebook) the learner's function was written in,
    which tell the learner's own code from library code; ``None`` if there are none."""
    fn = getattr(fn, "__wrapped__", fn)
    return getattr(fn, "__globals__", None)


class _Alarm:
    """The signal handler that stops the learner's code on the main thread.

    When time is up, :meth:`ring` raises ``_TimeLimit`` wherever the learner's code is. A bare
    ``except:`` (or ``except BaseException``) inside a loop can catch that and carry on, so the
    alarm rings again every ``RETRY_EVERY`` seconds; from the second ring on, it also turns on
    line tracing in the learner's own functions, so that ``_TimeLimit`` is raised again at the
    first line of the ``except:`` block that caught it, from where it escapes the ``try``.
    After the first ring, nothing but the learner's own code is interrupted, so clean-up (``with``
    blocks, library code) still runs; and under a debugger (which traces the code itself) no
    tracing is added, so a loop that swallows the stop may run on there.
    (Code that catches it at two levels at once, a loop in a loop each with its own bare
    ``except:``, may still run on: those ``except:`` blocks swallow Ctrl-C too, so only
    restarting the kernel stops it.)
    """

    def __init__(self, learner_globals):
        self.learner_globals = learner_globals
        self.armed = False  # while True, a ring raises _TimeLimit
        self.rang = False  # whether time ran out
        # A debugger (pdb, breakpoint(), JupyterLab's) traces the code itself: leave its tracing alone.
        self.may_trace = sys.gettrace() is None

    def ring(self, signum, frame):
        """Called by the SIGALRM signal, with ``frame`` the code it interrupted."""
        if not self.armed or frame.f_globals is globals():
            return  # never inside this module's own bookkeeping
        if self.rang:  # the last _TimeLimit was caught and the code ran on
            if self.may_trace:
                self.trace_learner_code(frame)
            if not self.is_learners(frame):
                return  # raise again only in the learner's code: library clean-up runs undisturbed
        self.rang = True
        raise _TimeLimit()

    def is_learners(self, frame) -> bool:
        """Whether ``frame`` runs the learner's code (it shares their global names)."""
        return self.learner_globals is not None and frame.f_globals is self.learner_globals

    def trace_learner_code(self, frame):
        """Trace the learner's functions: those running now (from ``frame`` back to this module's
        code that called them) and any they call from now on."""
        sys.settrace(self.trace_call)
        while frame is not None and frame.f_globals is not globals():
            if self.is_learners(frame):
                frame.f_trace = self.stop_at_line
            frame = frame.f_back

    def trace_call(self, frame, event, arg):
        """Called as each new function starts: trace it line by line if it is the learner's."""
        return self.stop_at_line if self.is_learners(frame) else None

    def stop_at_line(self, frame, event, arg):
        """Called before each line of the learner's traced code runs: raise again inside an
        ``except`` block that has just caught ``_TimeLimit``."""
        if self.armed and event == "line" and isinstance(sys.exc_info()[1], _TimeLimit):
            raise _TimeLimit()
        return self.stop_at_line


def _call_with_alarm(call, seconds, learner_globals):
    """``call()`` on the main thread, stopped by the alarm signal after ``seconds``."""
    alarm = _Alarm(learner_globals)
    previous_handler = signal.signal(signal.SIGALRM, alarm.ring)
    previous_trace = sys.gettrace()
    try:
        alarm.armed = True
        signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_EVERY)
        outcome = _outcome_of(call)
    except _TimeLimit:
        outcome = "timeout", None
    finally:
        alarm.armed = False  # first, before any call: from here on a late ring raises nothing
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if alarm.rang:
            sys.settrace(previous_trace)
    if alarm.rang:  # even if the code caught every _TimeLimit and then returned
        return "timeout", None
    return outcome


def _call_in_thread(call, seconds):
    """``call()`` in a helper thread, waited for at most ``seconds``. A thread cannot be stopped
    from outside, so code that never ends goes on running in the background."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(outcome=_outcome_of(call)), daemon=True)
    worker.start()
    worker.join(seconds)
    return box.get("outcome", ("timeout", "still running"))


def call_with_time_limit(call, seconds, learner_globals=None):
    """Run ``call()`` for at most ``seconds``. Returns ``("ok", value)``, ``("raised", exception)``,
    ``("timeout", None)``, or ``("timeout", "still running")`` when it could not be stopped."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _call_with_alarm(call, seconds, learner_globals)
    return _call_in_thread(call, seconds)


class Clock:
    """The time one checker call may take: ``per_case`` seconds for each case, ``total`` for all.

    Made with the settings as they are now (:meth:`for_checker`), so that a change to
    ``TIME_LIMIT`` takes effect at the next checker call.
    """

    def __init__(self, per_case, total, learner_globals):
        self.per_case = per_case
        self.total = total
        self.deadline = time.monotonic() + total
        self.learner_globals = learner_globals

    @classmethod
    def for_checker(cls, fn, time_limit=None):
        """The clock for one checker call on ``fn``: ``time_limit`` per case (``TIME_LIMIT`` when
        not given, read now), ``TOTAL_TIME_FACTOR`` times that for all the cases."""
        per_case = TIME_LIMIT if time_limit is None else time_limit
        return cls(per_case, TOTAL_TIME_FACTOR * per_case, learner_globals(fn))

    def run(self, call):
        """``call()`` under the time limit: as :func:`call_with_time_limit`, with the status
        ``"out of time"`` instead of ``"timeout"`` when the checker's total time ran out."""
        seconds = min(self.per_case, self.deadline - time.monotonic())
        if seconds < 0.001:
            return "out of time", None
        status, value = call_with_time_limit(call, seconds, self.learner_globals)
        if status == "timeout" and seconds < self.per_case:
            return "out of time", value
        return status, value
