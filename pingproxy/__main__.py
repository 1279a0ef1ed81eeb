"""``python -m pingproxy``: the same as the pingproxy command."""

import sys

from pingproxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
