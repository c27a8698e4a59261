"""A Celery worker with a stack sampler: ``python -m bench.profiled_worker OUT -- <celery args>``.

For on-CPU time, py-spy 0.4 (``pip install py-spy``) reads these processes from outside:
``py-spy record --gil -f raw --pid PID`` (``--subprocesses`` on gunicorn's master) samples
only the thread that holds the GIL. This launcher gives the wall-clock view: yappi hangs
the worker's event loop, and the worker runs tasks on pool threads, which cProfile and
pyinstrument do not follow. So a thread samples every other thread's Python stack
(``sys._current_frames``) ``RATE_HZ`` times a second; on exit (SIGTERM: warm shutdown) the
stacks go to OUT in the collapsed format (``frame;frame;... count``) that
``bench.profile_summary`` reads. These are wall-clock samples of every thread, idle ones
included: the summary tells the idle ones apart.
"""

import atexit
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

RATE_HZ = 500


def _name(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{code.co_name}"


def _sample(stacks: Counter[str], stop: threading.Event) -> None:
    me = threading.get_ident()
    while not stop.wait(1 / RATE_HZ):
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            names: list[str] = []
            current: FrameType | None = frame
            while current is not None:
                names.append(_name(current))
                current = current.f_back
            names.reverse()
            stacks[";".join(names)] += 1


def main() -> None:
    out = Path(sys.argv[1])
    celery_args = sys.argv[sys.argv.index("--") + 1 :]
    stacks: Counter[str] = Counter()
    stop = threading.Event()
    started = time.monotonic()

    def dump() -> None:
        stop.set()
        lines = [f"{stack} {count}" for stack, count in stacks.items()]
        out.write_text(
            f"# seconds {time.monotonic() - started:.3f} rate {RATE_HZ}\n" + "\n".join(lines) + "\n"
        )

    atexit.register(dump)
    threading.Thread(target=_sample, args=(stacks, stop), daemon=True, name="sampler").start()
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_args]
    celery_main()


if __name__ == "__main__":
    main()
