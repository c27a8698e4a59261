"""Where a worker's time goes: a summary of the stacks bench/profiled_worker.py sampled.

    python -m bench.throughput --profile var/worker-profile.txt --n 3000
    python -m bench.profile_summary var/worker-profile.txt --executions 3200

Samples of idle threads (an innermost frame that blocks: an idle pool thread, select,
a socket read, a condition wait) are left out; what remains is *busy* time: on the CPU,
waiting for the GIL, or in short socket writes and reads of a query's answer. Two views: *step*, the agentq step a
stack is in (claim, finish, the Celery machinery around them, ...), and *self*, the
package of the innermost frame (SQLAlchemy, PyMySQL, Celery, kombu, json...).
"""

import argparse
import re
from collections import Counter
from pathlib import Path

# Innermost frames of an idle thread: blocked in C, on no CPU.
IDLE = (
    "concurrent/futures/thread.py:_worker",
    "socket.py:readinto",
    "selectors.py:select",
    "threading.py:wait",
    "kombu/utils/eventio.py:poll",
    "queue.py:get",
    # A grouping thread waiting for work blocks in SimpleQueue.get, which is C: its
    # innermost Python frame is the loop itself, whose own work is a few lines per group.
    "agentq/core/grouping.py:_serve_waiting",
)
# The first of these found in a stack (outermost to innermost order is irrelevant) names its step.
STEPS = [
    ("claim (UPDATE + SELECT + event INSERT)", re.compile(r"^agentq/core/store/claiming\.py:claim(_in)?$")),
    ("finish (UPDATE + event INSERT)", re.compile(r"^agentq/core/store/lifecycle\.py:finish$")),
    (
        "heartbeat / event flush",
        re.compile(r"^agentq/core/store/(lifecycle\.py:heartbeat|events\.py:record_events)$"),
    ),
    ("notify (Redis PUBLISH)", re.compile(r"^agentq/core/notify\.py")),
    ("plugin (echo)", re.compile(r"^workers/plugins/")),
    ("worker metrics / signals", re.compile(r"^workers/(metrics|app|stalls)\.py")),
    ("runtime (rest)", re.compile(r"^workers/(runtime|attempt|outcomes|recorder|heartbeat)\.py")),
    ("task shell", re.compile(r"^tasks/executions\.py")),
]
PACKAGES = [
    ("SQLAlchemy", "sqlalchemy/"),
    ("PyMySQL", "pymysql/"),
    ("Celery", "celery/"),
    ("kombu", "kombu/"),
    ("redis-py", "redis/"),
    ("pydantic", "pydantic"),
    ("json", "json/"),
    ("logging", "logging/"),
    ("prometheus_client", "prometheus_client/"),
    ("threading / queue", "threading.py"),
    ("agentq code", "agentq/core/"),
    ("agentq code", "workers/"),
    ("agentq code", "tasks/"),
]


def summarize(path: Path, executions: int) -> list[tuple[str, float, float]]:
    """Rows (label, % of busy samples, ms per execution)."""
    steps: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = waiting = 0
    rate_hz = 1.0
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            rate_hz = float(line.split()[-1])
            continue
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        if stack.rsplit(";", 1)[-1] in IDLE or stack.endswith("[waiting]"):
            waiting += int(count_text)
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        step = next(
            (name for name, pattern in STEPS if any(pattern.search(f) for f in frames)),
            "Celery/kombu consumer (outside the task)",
        )
        steps[step] += count
        leaf = frames[-1]
        packages[next((name for name, marker in PACKAGES if leaf.startswith(marker)), "other (stdlib)")] += (
            count
        )

    def ms(count: int) -> float:
        return 1000 * count / rate_hz / executions

    rows = [("TOTAL busy (all threads)", 100.0, ms(total))]
    rows += [(f"step: {name}", 100 * c / total, ms(c)) for name, c in steps.most_common()]
    rows += [(f"self: {name}", 100 * c / total, ms(c)) for name, c in packages.most_common()]
    return [*rows, ("(left out: idle thread samples)", 100 * waiting / total, ms(waiting))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--executions", type=int, required=True, help="executions run while profiled")
    args = parser.parse_args()
    for label, share, per_execution in summarize(args.profile, args.executions):
        print(f"{label:<48} {share:5.1f} %  {per_execution:6.2f} ms/execution")


if __name__ == "__main__":
    main()
