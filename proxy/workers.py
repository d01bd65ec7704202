"""`--num_workers N`: uvicorn's worker supervisor, with SIGHUP passed on to the workers.

uvicorn's own answer to SIGHUP is to replace every worker, which drops each worker's router state
(cooldowns, latency, rpm counts kept without Redis). A worker reloads its config in place instead
(`LiveModels`), so the supervisor only has to tell each of them.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("proxy")


class ReloadingWorkers(Multiprocess):
    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None:
                try:
                    os.kill(process.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass  # it died; the supervisor starts another, which reads the file anyway


def run_workers(app: str, workers: int, **options: Any) -> None:
    """`uvicorn.run(app, workers=N, **options)`, with `ReloadingWorkers` as the supervisor."""
    config = Config(app, workers=workers, **options)
    ReloadingWorkers(config, sockets=[config.bind_socket()]).run()
