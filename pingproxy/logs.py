"""Log output: one line per record, as text for people or JSON for log pipelines.

A busy proxy logs a line per pingback, so a line must be cheap. Made one at a time, between
the other work of a request, a log record's long path through the stdlib's logging was a
sixth of a pingback's CPU; LineQueue makes the lines of a burst in one go instead, within
FLUSH_SECONDS, each with the time it happened. When the only place its lines can go is
pingproxy's own handler (as configured, with no filter), it writes them there as that
handler's formatter would, without a LogRecord each: the record's path alone cost a pingback
more than its forward's headers. Anywhere else (a test's capturing handler, a filter), each
line is a record, as before. Lines go to stderr through a block buffer that the event loop
flushes within FLUSH_SECONDS of its first line (at once for warnings and errors, and
wherever no event loop runs): one write for a burst of lines rather than one each.
Timestamps format their date and time once a second.
"""

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
FLUSH_SECONDS = 0.1
BUFFER_BYTES = 64 * 1024
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _SecondStamp:
    """A time.strftime of whole seconds, formatted again only when the second changes."""

    def __init__(self, pattern: str, convert) -> None:
        self._pattern = pattern
        self._convert = convert
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self._pattern, self._convert(second))
        return self._text


class TextFormatter(logging.Formatter):
    """The stdlib's default line, "2026-11-24 06:03:34,999 INFO name message"."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)
        self._stamp = _SecondStamp(self.default_time_format, time.localtime)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self._stamp(record.created)},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # The same line as the stdlib's, written out: its general path cost a pingback 3%.
        return f"{self.formatTime(record)} {record.levelname} {record.name} {record.getMessage()}"

    def line(self, created: float, level: int, name: str, message: str,
             fields: dict[str, object]) -> str:
        """The line format() writes for a plain record made with these."""
        return (f"{self._stamp(created)},{_milliseconds(created):03d} "
                f"{logging.getLevelName(level)} {name} {message}")


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a pingback's fields become keys of their own."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _SecondStamp("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": f"{self._stamp(record.created)}.{int(record.msecs):03d}+00:00",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "pingback", {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)

    def line(self, created: float, level: int, name: str, message: str,
             fields: dict[str, object]) -> str:
        """The line format() writes for a plain record made with these (and fields as extra)."""
        return json.dumps({
            "time": f"{self._stamp(created)}.{_milliseconds(created):03d}+00:00",
            "level": logging.getLevelName(level).lower(),
            "logger": name,
            "message": message,
            **fields.get("pingback", {}),
        }, ensure_ascii=False)


def _milliseconds(created: float) -> int:
    """The milliseconds of a time, as LineQueue gives its records (LogRecord.msecs)."""
    return int((created - int(created)) * 1000)


class BatchingStreamHandler(logging.StreamHandler):
    """A StreamHandler whose stream is flushed by the running event loop, soon after a line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flush_scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING or not self._flush_soon():
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_lines(self, lines: list[str]) -> None:
        """Write lines that this handler's formatter wrote (LineQueue), as emit() would."""
        with self.lock:
            self.stream.write("".join(f"{line}{self.terminator}" for line in lines))
        if not self._flush_soon():
            self.stream.flush()

    def _flush_soon(self) -> bool:
        """Have the running event loop flush within FLUSH_SECONDS; False if none runs here."""
        if self._flush_scheduled:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        loop.call_later(FLUSH_SECONDS, self._flush_now)
        self._flush_scheduled = True
        return True

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        self.flush()


LineMaker = Callable[..., tuple[str, dict[str, object]]]
"""Writes a queued line: its message and the extra fields its record carries."""


class LineQueue:
    """A logger's lines, queued as they happen and logged in a burst within FLUSH_SECONDS
    (at once where no event loop runs); flush() logs what is queued, as at shutdown."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._queued: list[tuple[float, int, LineMaker, tuple]] = []
        self._flush_scheduled = False

    def put(self, level: int, make_line: LineMaker, *arguments: object) -> None:
        """Queue the line that make_line(*arguments) writes, stamped now."""
        self._queued.append((time.time(), level, make_line, arguments))
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        loop.call_later(FLUSH_SECONDS, self.flush)
        self._flush_scheduled = True

    def flush(self) -> None:
        """Log every queued line now, each with the time it was queued."""
        queued, self._queued = self._queued, []
        self._flush_scheduled = False
        logger = self._logger
        handler = _sole_handler(logger, min((level for _, level, _, _ in queued), default=0))
        if handler is not None:
            formatter, name = handler.formatter, logger.name
            handler.write_lines([formatter.line(created, level, name, *make_line(*arguments))
                                 for created, level, make_line, arguments in queued])
            return
        for created, level, make_line, arguments in queued:
            message, extra = make_line(*arguments)
            record = logger.makeRecord(logger.name, level, __file__, 0, message, (), None,
                                       extra=extra)
            record.created = created
            record.msecs = _milliseconds(created) + 0.0
            logger.handle(record)


def _sole_handler(logger: logging.Logger, level: int) -> BatchingStreamHandler | None:
    """The one handler that records of this logger at this level and above reach, if it is
    pingproxy's own with its own formatter and nothing on the way filters: then a line can
    be written there without a record; else None."""
    if logger.disabled:
        return None
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found += current.handlers
        current = current.parent if current.propagate else None
    if len(found) != 1:
        return None
    handler = found[0]
    if (type(handler) is not BatchingStreamHandler or handler.filters or handler.level > level
            or type(handler.formatter) not in (TextFormatter, JsonFormatter)):
        return None
    return handler


def configure(log_format: str, level: str) -> None:
    """Send every pingproxy, aiohttp and gunicorn record to stderr in the chosen format."""
    stream = open(sys.stderr.fileno(), "w", buffering=BUFFER_BYTES, encoding="utf-8",
                  errors="backslashreplace", closefd=False)
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Logging HOWTO's own advice for speed: records need no thread names. The process id
    # stays: gunicorn's own lines (--workers) print it, and fail without it.
    logging.logThreads = logging.logMultiprocessing = False
