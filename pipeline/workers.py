"""Process pools whose workers never outlive the run that started them, nor leave warnings behind.

A pool's workers are daemonic, but only a parent that exits cleanly takes them along: a parent
killed outright (SIGKILL, SIGTERM, out of memory) left them training for the rest of an hour.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading

from tqdm import tqdm

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def pool(processes: int) -> multiprocessing.pool.Pool:
    """A spawn pool, as the stages used before (a fork copies torch's thread pools in whatever state
    they are), whose workers bind to this process (bind_to_parent)."""
    context = multiprocessing.get_context("spawn")
    return context.Pool(processes, bind_to_parent, (os.getpid(),))


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
