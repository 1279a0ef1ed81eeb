"""Log lines: the stdlib's formats, produced cheaply, and flushed soon but not every line."""

import asyncio
import io
import json
import logging
import sys
import time
from datetime import UTC, datetime

import pytest

from pingproxy.logs import (
    FLUSH_SECONDS,
    BatchingStreamHandler,
    JsonFormatter,
    LineQueue,
    TextFormatter,
)


def record(created: float, level: int = logging.INFO, **extra) -> logging.LogRecord:
    made = logging.LogRecord("pingproxy.relay", level, __file__, 1, "pingback %s", ("x=1",), None)
    made.created, made.msecs = created, int((created - int(created)) * 1000) + 0.0
    made.__dict__.update(extra)
    return made


@pytest.mark.parametrize("created", [1_764_300_000.0, 1_764_300_000.999, 1_764_300_001.5])
def test_text_lines_are_the_stdlib_default_format(created):
    stdlib = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")

    assert TextFormatter().format(record(created)) == stdlib.format(record(created))


def test_a_line_with_an_exception_carries_its_traceback_as_the_stdlib_writes_it():
    stdlib = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record(1_764_300_000.5, exc_info=sys.exc_info())

    line = TextFormatter().format(failed)

    assert line == stdlib.format(failed) and "ValueError: boom" in line


@pytest.mark.parametrize("created", [1_764_300_000.0, 1_764_300_000.999, 1_764_300_061.25])
def test_json_lines_carry_an_iso_time_in_utc_and_the_pingback_fields(created):
    line = json.loads(JsonFormatter().format(record(created, pingback={"outcome": "success"})))

    assert line["time"] == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert line["outcome"] == "success" and line["message"] == "pingback x=1"


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


async def test_a_burst_of_lines_is_flushed_once_soon_after():
    stream = CountingStream()
    handler = BatchingStreamHandler(stream)

    for n in range(100):
        handler.emit(record(1_764_300_000.0 + n))
    assert stream.flushes == 0
    await asyncio.sleep(FLUSH_SECONDS * 3)

    assert stream.flushes == 1
    assert stream.getvalue().count("\n") == 100


async def test_a_warning_is_flushed_at_once():
    stream = CountingStream()

    BatchingStreamHandler(stream).emit(record(1_764_300_000.0, logging.WARNING))

    assert stream.flushes == 1


def test_without_an_event_loop_every_line_is_flushed():
    stream = CountingStream()
    handler = BatchingStreamHandler(stream)

    handler.emit(record(1_764_300_000.0))
    handler.emit(record(1_764_300_000.0))

    assert stream.flushes == 2


def line(number: int) -> tuple[str, dict]:
    return f"pingback number={number}", {"pingback": {"number": number}}


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected():
    logger = logging.getLogger("pingproxy.test-line-queue")
    handler = Collected()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler
    logger.removeHandler(handler)


async def test_queued_lines_are_logged_together_soon_each_with_its_own_time(collected):
    logger, handler = collected
    queue = LineQueue(logger)

    queue.put(logging.INFO, line, 1)
    await asyncio.sleep(0.03)
    queue.put(logging.INFO, line, 2)
    assert handler.records == []
    await asyncio.sleep(FLUSH_SECONDS * 2)

    first, second = handler.records
    assert [first.getMessage(), second.getMessage()] == ["pingback number=1", "pingback number=2"]
    assert second.created - first.created >= 0.03
    assert first.pingback == {"number": 1}


def test_without_an_event_loop_a_line_is_logged_at_once(collected):
    logger, handler = collected

    LineQueue(logger).put(logging.INFO, line, 7)

    assert [record.getMessage() for record in handler.records] == ["pingback number=7"]


async def test_flush_logs_what_is_queued_at_once(collected):
    logger, handler = collected
    queue = LineQueue(logger)
    queue.put(logging.INFO, line, 1)

    queue.flush()

    assert len(handler.records) == 1


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_lines_to_pingproxys_own_handler_alone_are_written_as_records_would_be_without_one(
        monkeypatch, formatter):
    created = 1_764_300_000.25
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(formatter())
    logger = logging.getLogger(f"pingproxy.test-sole-handler-{formatter.__name__}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(time, "time", lambda: created)
    as_record = logging.LogRecord(logger.name, logging.INFO, __file__, 0, "pingback number=7",
                                  (), None)
    as_record.created, as_record.msecs, as_record.pingback = created, 250.0, {"number": 7}
    records_made = []
    default_factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *args, **kwargs: records_made.append(args)
                                or default_factory(*args, **kwargs))
    try:
        LineQueue(logger).put(logging.INFO, line, 7)
    finally:
        logging.setLogRecordFactory(default_factory)
        logger.removeHandler(handler)

    assert stream.getvalue() == formatter().format(as_record) + "\n"
    assert records_made == []
