"""What inbound trouble costs in the log: a loop out of file descriptors, one line a second."""

import asyncio
import errno
import logging
import socket

import pytest
from aiohttp import web

from pingproxy.inbound import quiet_accept_failures


@pytest.fixture
async def loop_reports():
    """The running loop, with the handler pingproxy installs, restored afterwards."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    await quiet_accept_failures(web.Application())
    yield loop.call_exception_handler
    loop.set_exception_handler(previous)


async def test_a_thousand_failed_accepts_are_one_line(loop_reports, caplog):
    with socket.socket() as listening:
        for _ in range(1000):
            loop_reports({"message": "socket.accept() out of system resource",
                          "exception": OSError(errno.EMFILE, "Too many open files"),
                          "socket": listening})

    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "cannot accept new connections: Too many open files" in record.getMessage()


async def test_retries_on_a_closed_listening_socket_are_quiet_after_failed_accepts(
        loop_reports, caplog):
    with socket.socket() as listening:
        loop_reports({"message": "socket.accept() out of system resource",
                      "exception": OSError(errno.EMFILE, "Too many open files"),
                      "socket": listening})
    for _ in range(1000):
        loop_reports({"message": "Exception in callback",
                      "exception": ValueError("Invalid file descriptor: -1")})

    assert [r.levelno for r in caplog.records if r.levelno >= logging.INFO] == [logging.WARNING]


async def test_other_loop_reports_go_where_they_went(loop_reports, caplog):
    loop_reports({"message": "Exception in callback", "exception": ValueError("other")})

    [record] = caplog.records
    assert record.name == "asyncio" and record.levelno == logging.ERROR
