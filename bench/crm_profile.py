"""The CRM under cProfile, its database threads included: ``python -m bench.crm_profile OUTPUT serve [...]``.

``python -m cProfile`` sees only the main thread, where the CRM's handlers wait, not the thread
pool where its use cases run SQL and build the JSON. This entry point gives the main thread and
every database thread a profiler of its own (the pool's initializer enables it) that counts the
thread's CPU time (``time.thread_time``: time spent waiting, for I/O, a lock or the GIL, is not
counted), runs ``python -m crm`` with the remaining arguments, and when the CRM stops (SIGTERM, Ctrl-C) writes the
merged statistics to OUTPUT (``pstats``). ``python -m bench.cpu --profile-crm OUTPUT`` starts the
CRM this way and prints the top costs.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional

PROFILERS: List[cProfile.Profile] = []
_LOCK = threading.Lock()


def profile_this_thread() -> None:
    """Enable a new profiler for the calling thread (a pool's initializer)."""
    profiler = cProfile.Profile(time.thread_time)  # CPU time of this thread, not the wall clock
    with _LOCK:
        PROFILERS.append(profiler)
    profiler.enable()


class ProfiledThreadPool(ThreadPoolExecutor):
    """A thread pool whose every thread runs under its own profiler."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initializer", profile_this_thread)
        super().__init__(*args, **kwargs)


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: python -m bench.crm_profile OUTPUT serve [--host H] [--port P]", file=sys.stderr)
        return 2
    output, crm_args = args[0], args[1:]
    import crm.app
    from crm.__main__ import main as crm_main

    crm.app.ThreadPoolExecutor = ProfiledThreadPool  # type: ignore[misc]
    profile_this_thread()
    main_profiler = PROFILERS[-1]
    try:
        return crm_main(crm_args)
    finally:
        main_profiler.disable()  # the pool's threads have ended with the server (Runner.close)
        stats = pstats.Stats(main_profiler)
        for profiler in PROFILERS[1:]:
            stats.add(profiler)
        stats.dump_stats(output)


if __name__ == "__main__":
    sys.exit(main())
