"""pipeline.workers: a worker's death is an error, not a hang; leaving the pool ends its workers now."""
from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline.errors import InputError, WorkerLost
from pipeline.workers import pool

WAIT = 120  # seconds a result may take before the test calls it a hang


def kill_self(_: int) -> None:
    """Module level, so that a spawned worker can import it: what the out-of-memory killer does."""
    os.kill(os.getpid(), signal.SIGKILL)


def raise_input_error(path: str, reason: str) -> None:
    raise InputError(path, reason)


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_a_killed_worker_raises_worker_lost_naming_the_signal(start: str) -> None:
    """multiprocessing.Pool waited forever here: it replaces the dead worker and loses its task."""
    with pytest.raises(WorkerLost, match="killed by SIGKILL.*out-of-memory"):
        with pool(2, start) as workers:
            for pending in [workers.submit(kill_self, k) for k in range(2)]:
                pending.result(timeout=WAIT)  # a TimeoutError, not WorkerLost, would be the hang


def test_an_input_error_in_a_worker_reaches_the_parent_whole() -> None:
    """It crosses back pickled: InputError rebuilds from (path, reason), not from its message."""
    with pytest.raises(InputError) as caught:
        with pool(1) as workers:
            workers.submit(raise_input_error, "a.wav", "bad").result(timeout=WAIT)
    assert (caught.value.path, caught.value.reason) == ("a.wav", "bad")


def test_leaving_the_block_by_an_exception_ends_running_workers_at_once() -> None:
    """A context manager's shutdown() would wait for the hour-long task; Ctrl-C must not."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with pool(2) as workers:
            tasks = [workers.submit(time.sleep, 3600) for _ in range(3)]
            time.sleep(1)  # the workers have started and taken their tasks
            processes = list(workers._processes.values())
            raise KeyboardInterrupt
    assert time.monotonic() - started < 60
    assert len(processes) == 2 and not any(p.is_alive() for p in processes)
    assert not any(task.done() and task.exception() is None for task in tasks)


def test_a_finished_block_returns_the_results_in_order() -> None:
    with pool(2, "fork") as workers:
        assert list(workers.map(abs, range(-5, 5), chunksize=3)) == [abs(k) for k in range(-5, 5)]
