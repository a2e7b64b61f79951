"""SIGTERM and SIGINT ask for a clean stop; a second one ends the process at once.

As PID 1 (in a container) the kernel gives a process no default action for SIGTERM, so
without a handler `docker stop` waits its timeout and kills. The handler only flips a flag:
the run loop then stops intake, drains and hands back (see ImagineService.stop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Install with `install()` inside the running loop; await `requested.wait()`."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Handle SIGTERM and SIGINT on the running loop."""
        self._loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def uninstall(self) -> None:
        """Give the signals back their previous handling."""
        if self._loop is not None:
            for sig in STOP_SIGNALS:
                self._loop.remove_signal_handler(sig)
            self._loop = None

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            # The database is crash-safe and the kernel drops this process's lease with it:
            # the next start takes its jobs over, exactly as after a kill.
            log.warning("%s again: stopping at once", sig.name)
            logging.shutdown()
            os._exit(128 + sig)
        log.info("%s: stopping; running jobs may finish, the rest are kept for the next "
                 "start", sig.name)
        self.requested.set()
