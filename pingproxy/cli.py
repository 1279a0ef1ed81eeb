"""The pingproxy command and its subcommands: the only module that prints or exits.

``pingproxy serve`` runs the proxy; plain ``pingproxy`` with only flags does the same, so the
Procfile, the systemd unit and every existing flag keep working.
"""

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from pingproxy import __version__, config, logs
from pingproxy.config import ConfigError, Settings


class ExitStatus(IntEnum):
    """What the command's exit code tells a script."""

    OK = 0
    FAILED = 1  # it ran, and what it checked or sent did not work (or the port was taken)
    USAGE = 2  # bad usage, an unusable setting, or a URL that could not be fetched


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its summary, its own arguments beyond the settings, and how it runs."""

    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], ExitStatus]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; exit 2 with a one-line message on bad usage or settings."""
    arguments = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    parsed = build_parser().parse_args(arguments)
    try:
        settings = config.settings_from(vars(parsed), os.environ, parsed.command)
    except ConfigError as error:
        print(f"pingproxy: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    return COMMANDS[parsed.command].run(parsed, settings)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand with its own arguments and settings."""
    parser = argparse.ArgumentParser(
        prog="pingproxy",
        description="Receive Pingbacks (XML-RPC) and forward them as WebMentions.",
        epilog="Plain 'pingproxy [options]' is 'pingproxy serve [options]'.",
    )
    parser.add_argument("--version", action="version", version=f"pingproxy {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        subparser = subcommands.add_parser(name, help=command.summary,
                                           description=command.summary)
        command.add_arguments(subparser)
        config.add_options(subparser, name)
    return parser


def _with_default_command(arguments: list[str]) -> list[str]:
    """Plain flags, or none, mean serve; --help and --version stay the command's own."""
    if arguments and (arguments[0] in COMMANDS or arguments[0] in ("-h", "--help", "--version")):
        return arguments
    return ["serve", *arguments]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """serve takes settings only."""


def _serve(arguments: argparse.Namespace, settings: Settings) -> ExitStatus:
    logs.configure(settings.log_format, settings.log_level)
    with _shared_metrics(settings, os.environ) as settings:
        # Imported only now: prometheus-client chooses its multiprocess mode when imported.
        from pingproxy.server import serve

        try:
            serve(settings)
        except OSError as error:  # the address is taken, or not this machine's
            print(f"pingproxy: cannot listen on {settings.host}:{settings.port}: "
                  f"{error.strerror or error}", file=sys.stderr)
            return ExitStatus.FAILED
    return ExitStatus.OK


@contextmanager
def _shared_metrics(settings: Settings, environ: dict[str, str]) -> Iterator[Settings]:
    """With several workers, a directory where they share metrics, emptied at start."""
    if settings.workers == 1 or not settings.metrics:
        yield settings
        return
    temporary = settings.metrics_dir is None
    path = Path(settings.metrics_dir or tempfile.mkdtemp(prefix="pingproxy-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    try:
        yield dataclasses.replace(settings, metrics_dir=str(path))
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)


COMMANDS: Mapping[str, Command] = {
    "serve": Command("receive pingbacks and forward them as WebMentions (the default)",
                     _no_arguments, _serve),
}
