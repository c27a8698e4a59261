"""gunicorn settings for the API: ``gunicorn --config gunicorn.conf.py api.main:app``.

Everything comes from ``AGENTQ_*`` variables (see ``.env.example``). The app is imported
by each worker after fork (no ``preload_app``), so every process opens its own database
and Redis connections; ``post_fork`` drops any the master might have made all the same.
Prometheus counters of all the workers are summed through files in
``PROMETHEUS_MULTIPROC_DIR``: a fresh private directory unless one is given.
"""

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from agentq.core import logs
from agentq.core.settings import Settings

_settings = Settings()

bind = f"0.0.0.0:{_settings.api_port}"
workers = _settings.api_workers
# Its "auto" loop and HTTP parser: uvloop and httptools.
worker_class = "uvicorn_worker.UvicornWorker"
# Recycle each process after about this many requests; the jitter keeps them from all
# restarting at once. A recycled process finishes its requests first.
max_requests = _settings.api_max_requests
max_requests_jitter = _settings.api_max_requests_jitter
# A stopping process may finish its requests for this long: long-polls last max_wait_s.
graceful_timeout = math.ceil(_settings.api_graceful_timeout_s)
timeout = 30
keepalive = 5
# The worker heartbeat files: on a tmpfs where there is one (a container's disk can stall).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
logconfig_dict = logs.dict_config()
accesslog = "-" if _settings.api_access_log else None

# Must be in the environment before the workers import prometheus_client.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentq-prometheus-")
metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(_server: Any) -> None:
    # Files from an earlier run would be added to this run's counters.
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()


def post_fork(_server: Any, _worker: Any) -> None:
    from agentq.core.db import dispose_after_fork

    dispose_after_fork()


def child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(_server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
