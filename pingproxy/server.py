"""Serving: one process with aiohttp's runner, or several through gunicorn's arbiter.

Both are the libraries' documented ways, and both serve through inbound.GuardedRunner, the
runner that gives each connection its header deadline. In one process that runner is
driven as ``web.run_app`` drives its own (it takes no other): on SIGTERM it closes the
listening socket, waits up to the grace period for requests in flight, then runs the
application's clean-up (which waits for forwards whose senders left). With several
workers, gunicorn's arbiter shares the port and aiohttp's ``GunicornWebWorker`` does the
same in each, with the runner the application factory returns. gunicorn is made to speak
as pingproxy does: its records go through pingproxy's log handler (text or JSON alike), the
port is bound once before any worker starts (a port in use is one OSError, not five retries),
and each worker serves on the plain listening socket, so that closing it on SIGTERM is quiet.
"""

import asyncio
import importlib.util
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aiohttp import web
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.sock import TCP6Socket, TCPSocket
from prometheus_client import multiprocess

from pingproxy import __version__
from pingproxy.app import create_app
from pingproxy.config import Settings
from pingproxy.inbound import GuardedRunner

# Connections the kernel may hold before they are accepted; a burst of pingbacks beyond
# aiohttp's default of 128 would otherwise wait for SYN retransmits.
LISTEN_BACKLOG = 1024

logger = logging.getLogger("pingproxy.server")


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then finish what is in flight and return."""
    logger.info("pingproxy %s starting on http://%s:%d/, %d worker(s), event loop %s",
                __version__, settings.host, settings.port, settings.workers,
                "uvloop" if uses_uvloop(settings) else "asyncio")
    if settings.workers == 1:
        _serve_in_this_process(settings)
    else:
        _GunicornArbiter(settings).run()


def runner_for(settings: Settings, *, shutdown_timeout_seconds: float,
               handle_signals: bool = False) -> GuardedRunner:
    """The runner of a new application for these settings."""
    return GuardedRunner(create_app(settings),
                         header_timeout_seconds=settings.header_timeout_seconds,
                         max_head_bytes=settings.max_head_bytes,
                         handle_signals=handle_signals, access_log=None,
                         shutdown_timeout=shutdown_timeout_seconds)


def _serve_in_this_process(settings: Settings) -> None:
    """Run the loop as web.run_app does: SIGTERM ends the serving task, which cleans up."""
    loop = _new_loop(settings)
    asyncio.set_event_loop(loop)
    serving = loop.create_task(_serve_until_stopped(settings))
    try:
        loop.run_until_complete(serving)
    except web.GracefulExit:  # raised by the runner's SIGTERM and SIGINT handlers
        pass
    finally:
        if not serving.done():
            serving.cancel()
            with suppress(asyncio.CancelledError):
                loop.run_until_complete(serving)
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve_until_stopped(settings: Settings) -> None:
    """Serve until cancelled (SIGTERM), then clean up as aiohttp's runner does."""
    runner = runner_for(settings, shutdown_timeout_seconds=settings.grace_seconds,
                        handle_signals=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def uses_uvloop(settings: Settings) -> bool:
    """Whether to run on uvloop: asked for, or "auto" and installed."""
    return settings.event_loop == "uvloop" or (
        settings.event_loop == "auto" and importlib.util.find_spec("uvloop") is not None)


def _new_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is used, else asyncio's own."""
    if not uses_uvloop(settings):
        return asyncio.new_event_loop()
    import uvloop  # installed only where it runs: imported only when it is used

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
            "post_fork": _serve_on_plain_sockets,
            "logger_class": _GunicornLog,
            "proc_name": "pingproxy",
            # gunicorn 27 opens a control socket in $HOME; pingproxy keeps nothing on disk.
            "control_socket_disable": True,
        }.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def run(self) -> None:
        """gunicorn's run, with the port bound first, once: OSError when it cannot be, where
        gunicorn's own binding would retry for five seconds and then exit with its lines."""
        arbiter = Arbiter(self)
        socket_type = TCP6Socket if ":" in self._settings.host else TCPSocket
        arbiter.LISTENERS = [socket_type(address, self.cfg, arbiter.log)
                             for address in self.cfg.address]
        arbiter.run()

    def load(self) -> Callable[[], Awaitable[GuardedRunner]]:
        """The application factory: aiohttp's worker serves with the runner it returns, given
        the shutdown timeout the worker gives its own: 95% of gunicorn's graceful timeout."""
        settings = self._settings
        shutdown_timeout_seconds = self.cfg.graceful_timeout * 0.95

        async def runner() -> GuardedRunner:
            return runner_for(settings, shutdown_timeout_seconds=shutdown_timeout_seconds)

        return runner


def _forget_worker_metrics(server, worker) -> None:
    """Drop a dead worker's live gauges, as prometheus-client's multiprocess mode asks."""
    multiprocess.mark_process_dead(worker.pid)


def _serve_on_plain_sockets(server, worker) -> None:
    """Give a new worker the listening sockets themselves, not gunicorn's wrappers of them.

    aiohttp's worker closes the sockets it serves on when it stops; after uvloop has closed
    its descriptor, closing gunicorn's wrapper again logged "Error while closing socket
    [Errno 9] Bad file descriptor" once per worker on every clean stop."""
    worker.sockets = [listener.sock for listener in worker.sockets]


class _GunicornLog(glogging.Logger):
    """gunicorn's logger, its records handed on to pingproxy's handler (logs.configure), so
    that its lines have pingproxy's format: JSON too with --log-format json."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
