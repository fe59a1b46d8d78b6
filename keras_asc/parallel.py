"""One way to run a function over many inputs in worker processes, with a progress bar.

:func:`parallel_map` is what dataset generation, feature extraction and validation use. Workers
are *spawned* (not forked: a parent that imported TensorFlow is not fork-safe), get one BLAS/OpenMP
thread each (N workers use N cores instead of fighting over them), and are told by the kernel to
die with their parent (``PR_SET_PDEATHSIG`` on Linux), so killing a run leaves no orphans behind.
``workers <= 1`` runs everything in this process, initializer included.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from typing import Any, Callable, Iterator, Sequence

from tqdm.auto import tqdm

#: worker processes of every stage that has them (dataset, features, validation, firmware runs): the
#: project's machines have 2 cores. The one default of every ``workers`` option and keyword.
DEFAULT_WORKERS = 2
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _die_with_parent(parent_pid: int) -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies. A parent that died
    while this worker was still starting (before the request) is caught by the pid check."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _start_worker(parent_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    _die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Spawned workers inherit the environment: one BLAS/OpenMP thread each."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARIABLES}
    os.environ.update({k: "1" for k in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parallel_map(fn: Callable[..., Any], calls: Sequence[tuple], *, workers: int, desc: str, unit: str,
                 sizes: Sequence[int] | None = None, initializer: Callable | None = None,
                 initargs: tuple = ()) -> Iterator[tuple[int, Any]]:
    """Yield ``(k, fn(*calls[k]))`` for every call, in the order they finish.

    ``sizes[k]`` is how many ``unit``s call ``k`` advances the progress bar (default 1);
    ``initializer(*initargs)`` runs once in each worker before its first call. ``fn`` and the
    initializer must be importable module-level functions (spawned workers import them).
    """
    sizes = list(sizes) if sizes is not None else [1] * len(calls)
    with tqdm(total=sum(sizes), desc=desc, unit=unit, leave=False) as bar:
        if workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for k, args in enumerate(calls):
                result = fn(*args)
                bar.update(sizes[k])
                yield k, result
            return
        ctx = multiprocessing.get_context("spawn")
        with _single_threaded_children(), cf.ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_start_worker,
                initargs=(os.getpid(), initializer, initargs)) as pool:
            futures = {pool.submit(fn, *args): k for k, args in enumerate(calls)}
            for fut in cf.as_completed(futures):
                k = futures[fut]
                result = fut.result()
                bar.update(sizes[k])
                yield k, result
