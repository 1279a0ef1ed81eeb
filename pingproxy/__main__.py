"""The pingproxy command: read flags and environment, build the settings, serve."""

import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from pingproxy.app import create_app
from pingproxy.config import ConfigError, load


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until stopped; exit 2 with a one-line message when a setting is unusable."""
    try:
        settings = load(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as error:
        print(f"pingproxy: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(create_app(settings), host=settings.host, port=settings.port,
                access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
