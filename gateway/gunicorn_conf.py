"""gunicorn settings for the gateway: `gunicorn 'gateway.wsgi:app' --config python:gateway.gunicorn_conf`.

With ``PROMETHEUS_MULTIPROC_DIR`` set, /metrics sums every worker's samples
(prometheus_client's multiprocess mode); the directory is emptied when gunicorn starts,
and a dead worker's live gauges are dropped.  Several workers need ``redis_url``
(``gateway.wsgi`` refuses to start without it).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

worker_class = "gthread"
threads = 32


def on_starting(server: Any) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
