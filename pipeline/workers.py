"""Process pools that neither outlive the run that started them nor hang it when a worker dies.

A pool's workers are daemonic, but only a parent that exits cleanly takes them along: a parent
killed outright (SIGKILL, SIGTERM, out of memory) left them training for the rest of an hour. The
other way round, multiprocessing.Pool replaces a worker killed mid-task and waits forever for the
task's result; concurrent.futures' pool reports the loss, which `pool` turns into one line.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from tqdm import tqdm

from pipeline.errors import WorkerLost

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@contextmanager
def pool(processes: int, start: str = "spawn") -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers bind to this process (bind_to_parent) and end with the block.

    start: "spawn" for training (a fork copies torch's thread pools in whatever state they are),
    "fork" where workers read module state the parent set up (audio already decoded). Leaving the
    block by an exception (Ctrl-C, a task's error) terminates the workers instead of waiting for
    their tasks; a worker's death raises WorkerLost, with its exit status, instead of hanging.
    """
    context = multiprocessing.get_context(start)
    executor = ProcessPoolExecutor(processes, context, initializer=bind_to_parent, initargs=(os.getpid(),))
    try:
        yield executor
    except BrokenProcessPool:
        processes = workers_of(executor)
        executor.shutdown()  # the pool's thread has found the loss, terminates the others and reaps them all
        raise WorkerLost(lost_worker_reason(processes)) from None
    except BaseException:
        terminate(executor)
        raise
    executor.shutdown()


def workers_of(executor: ProcessPoolExecutor) -> list[multiprocessing.Process]:
    """The pool's worker processes (a private attribute: Python 3.14 has terminate_workers())."""
    return list((executor._processes or {}).values())


def lost_worker_reason(processes: list[multiprocessing.Process]) -> str:
    """What ended a broken pool's workers, from their exit statuses: a signal's name where one killed them."""
    codes = {p.exitcode for p in processes if p.exitcode}
    if len(codes) > 1:  # the others' SIGTERM came from the pool, not from what broke it
        codes.discard(-signal.SIGTERM)
    how = ", ".join(f"killed by {signal.Signals(-c).name}" if c < 0 else f"exit status {c}" for c in sorted(codes))
    hint = " (often the out-of-memory killer)" if -signal.SIGKILL in codes else ""
    return f"a worker process ended without its result: {how or 'no exit status'}{hint}"


def terminate(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now: shutdown() alone waits for running tasks.

    The pool's own thread reaps the terminated workers; joining them here as well raced it (the
    loser's waitpid fails, and its Process reads as alive with no exit status), so wait for it.
    """
    processes = workers_of(executor)
    manager = executor._executor_manager_thread  # shutdown(wait=False) forgets it
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    if manager is not None:
        manager.join()  # it sees the workers' deaths, fails their tasks and joins every worker


def bind_to_parent(parent: int) -> None:
    """Pool initializer: end with the parent, leave Ctrl-C to it, keep tqdm off multiprocessing locks."""
    # Ctrl-C reaches the whole process group: the parent terminates the pool and prints one line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock holds a multiprocessing semaphore, registered with the resource tracker; a
    # terminated worker cannot unregister it, and the tracker then warns of "leaked semaphore objects"
    # at exit. A spawned worker shares no lock with the others anyway: a thread lock does the same.
    tqdm.set_lock(threading.RLock())
    if sys.platform.startswith("linux"):  # elsewhere, daemonic workers end only with a clean exit
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)
