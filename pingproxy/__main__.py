"""The pingproxy command: read flags and environment, build the settings, serve."""

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pingproxy import logs
from pingproxy.config import ConfigError, Settings, load


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until stopped; exit 2 with a one-line message when a setting is unusable."""
    try:
        settings = load(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as error:
        print(f"pingproxy: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    with _shared_metrics(settings) as settings:
        # Imported only now: prometheus-client chooses its multiprocess mode when imported.
        from pingproxy.server import serve

        try:
            serve(settings)
        except OSError as error:  # the address is taken, or not this machine's
            print(f"pingproxy: cannot listen on {settings.host}:{settings.port}: "
                  f"{error.strerror or error}", file=sys.stderr)
            return 1
    return 0


@contextmanager
def _shared_metrics(settings: Settings) -> Iterator[Settings]:
    """With several workers, a directory where they share metrics, emptied at start."""
    if settings.workers == 1 or not settings.metrics:
        yield settings
        return
    temporary = settings.metrics_dir is None
    path = Path(settings.metrics_dir or tempfile.mkdtemp(prefix="pingproxy-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    try:
        yield dataclasses.replace(settings, metrics_dir=str(path))
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
