"""Serving: one process with aiohttp's runner, or several through gunicorn's arbiter.

Both are the libraries' documented ways: ``web.run_app`` handles SIGTERM by closing the
listening socket, waiting up to the grace period for requests in flight, then running the
application's clean-up (which waits for forwards whose senders left); with several workers,
gunicorn's arbiter shares the port and aiohttp's ``GunicornWebWorker`` does the same in each.
"""

import asyncio
import importlib.util
import logging
import math

from aiohttp import web
from gunicorn.app.base import BaseApplication
from prometheus_client import multiprocess

from pingproxy import __version__
from pingproxy.app import create_app
from pingproxy.config import Settings

# Connections the kernel may hold before they are accepted; a burst of pingbacks beyond
# aiohttp's default of 128 would otherwise wait for SYN retransmits.
LISTEN_BACKLOG = 1024

logger = logging.getLogger("pingproxy.server")


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then finish what is in flight and return."""
    if settings.workers == 1:
        logger.info("pingproxy %s starting on http://%s:%d/, event loop %s", __version__,
                    settings.host, settings.port, "uvloop" if uses_uvloop(settings) else "asyncio")
        web.run_app(create_app(settings), host=settings.host, port=settings.port,
                    backlog=LISTEN_BACKLOG, shutdown_timeout=settings.grace_seconds,
                    access_log=None, print=None, loop=_new_loop(settings))
    else:
        _GunicornArbiter(settings).run()


def uses_uvloop(settings: Settings) -> bool:
    """Whether to run on uvloop: asked for, or "auto" and installed."""
    return settings.event_loop == "uvloop" or (
        settings.event_loop == "auto" and importlib.util.find_spec("uvloop") is not None)


def _new_loop(settings: Settings) -> asyncio.AbstractEventLoop | None:
    """A uvloop loop when it is used; None lets aiohttp make asyncio's own."""
    if not uses_uvloop(settings):
        return None
    import uvloop  # an optional dependency: imported only when it is used

    return uvloop.new_event_loop()


class _GunicornArbiter(BaseApplication):
    """gunicorn's custom-application hook, configured from Settings rather than its own flags."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        settings = self._settings
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        for name, value in {
            "bind": [f"{host}:{settings.port}"],
            "workers": settings.workers,
            "worker_class": "aiohttp.GunicornUVLoopWebWorker" if uses_uvloop(settings)
            else "aiohttp.GunicornWebWorker",
            "graceful_timeout": math.ceil(settings.grace_seconds),
            "backlog": LISTEN_BACKLOG,
            "accesslog": None,
            "loglevel": settings.log_level,
            "child_exit": _forget_worker_metrics,
            "proc_name": "pingproxy",
            # gunicorn 27 opens a control socket in $HOME; pingproxy keeps nothing on disk.
            "control_socket_disable": True,
        }.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> web.Application:
        return create_app(self._settings)


def _forget_worker_metrics(server, worker) -> None:
    """Drop a dead worker's live gauges, as prometheus-client's multiprocess mode asks."""
    multiprocess.mark_process_dead(worker.pid)
