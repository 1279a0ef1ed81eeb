"""The pingproxy command and its subcommands: the only module that prints or exits.

``pingproxy serve`` runs the proxy; plain ``pingproxy`` with only flags does the same, so the
Procfile, the systemd unit and every existing flag keep working.
"""

import argparse
import asyncio
import dataclasses
import difflib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path

from tqdm import tqdm
from yarl import URL

from pingproxy import __version__, config, diagnose, feeds, logs, outbound, ping, report
from pingproxy.config import ConfigError, Settings
from pingproxy.findings import Status
from pingproxy.send.feed_report import FeedReport, as_feed_json, feed_table
from pingproxy.send.post import DEFAULT_ENTRIES, Sender, SendRequest
from pingproxy.send.report import Previous, SendReport, as_json, read_previous, table
from pingproxy.send.run import SourceUnusable
from pingproxy.send.site import SiteProgress, SiteSender
from pingproxy.urls import http_url


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
    arguments = list(sys.argv[1:] if argv is None else argv)
    unknown = _unknown_command(arguments)
    if unknown is not None:
        print(f"pingproxy: {unknown}", file=sys.stderr)
        return ExitStatus.USAGE
    parser, subparsers = build_parsers()
    parsed, extra = parser.parse_known_args(_with_default_command(arguments))
    if extra:  # said by the subcommand, with its own usage, not the top level's
        subparsers[parsed.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        settings = config.settings_from(vars(parsed), os.environ, parsed.command)
    except ConfigError as error:
        print(f"pingproxy: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    return COMMANDS[parsed.command].run(parsed, settings)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand with its own arguments and settings."""
    return build_parsers()[0]


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The whole command line, and each subcommand's own parser by name."""
    parser = _Parser(
        prog="pingproxy",
        description="Receive Pingbacks (XML-RPC) and forward them as WebMentions.",
        epilog="Plain 'pingproxy [options]' is 'pingproxy serve [options]'.",
    )
    parser.add_argument("--version", action="version", version=f"pingproxy {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                        parser_class=_Parser)
    subparsers = {}
    for name, command in COMMANDS.items():
        subparser = subcommands.add_parser(name, help=command.summary,
                                           description=command.summary)
        command.add_arguments(subparser)
        config.add_options(subparser, name)
        subparsers[name] = subparser
    return parser, subparsers


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with the way out after the mistake an option of many values invites."""

    given: tuple[str, ...] = ()

    def parse_known_args(self, args=None, namespace=None):
        self.given = tuple(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        many = [action.option_strings[0] for action in self._actions
                if set(action.option_strings) & set(self.given) and action.nargs in ("+", "*")]
        if many and message.startswith("the following arguments are required"):
            missing = message.partition(": ")[2]
            message += (f" ({' and '.join(many)} takes every value after it: put {missing} "
                        f"first, or end the list with --)")
        super().error(message)


def _unknown_command(arguments: list[str]) -> str | None:
    """What is wrong when the first argument is a word that names no command, else None."""
    if not arguments or arguments[0].startswith("-") or arguments[0] in COMMANDS:
        return None
    word = arguments[0]
    nearest = difflib.get_close_matches(word, COMMANDS, n=1)
    guess = f"; did you mean '{nearest[0]}'?" if nearest else ""
    return f"unknown command {word!r} (commands: {', '.join(COMMANDS)}){guess}"


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


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the page to check, a post of your site")
    _json_argument(parser)


def _check(arguments: argparse.Namespace, settings: Settings) -> ExitStatus:
    url = _absolute_url("URL", arguments.url)
    if url is None:
        return ExitStatus.USAGE
    document = asyncio.run(_checked(url, settings))
    _print(document, report.check_text, arguments.json)
    return _CHECK_EXIT[document["status"]]


_CHECK_EXIT = {Status.WORKS.value: ExitStatus.OK, Status.BROKEN.value: ExitStatus.FAILED,
               Status.UNREACHABLE.value: ExitStatus.USAGE}


async def _checked(url: URL, settings: Settings) -> dict:
    policy = outbound.policy_for(settings, way_out=True)
    # Progress only on a terminal (tqdm's disable=None), on stderr, gone when done.
    with tqdm(desc="checking", unit=" steps", file=sys.stderr, disable=None,
              leave=False) as bar:
        def progress(step: str) -> None:
            bar.set_postfix_str(step, refresh=False)
            bar.update()

        async with outbound.open_session(settings, policy) as session:
            result = await diagnose.check(session, policy, settings, url,
                                          proxy_base=settings.public_url, progress=progress)
    return report.check_json(result)


def _ping_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="the page that links to TARGET")
    parser.add_argument("target", metavar="TARGET", help="the page linked to, whose pingback "
                                                         "server gets the ping")
    _json_argument(parser)


def _ping(arguments: argparse.Namespace, settings: Settings) -> ExitStatus:
    source = _absolute_url("SOURCE", arguments.source)
    target = _absolute_url("TARGET", arguments.target)
    if source is None or target is None:
        return ExitStatus.USAGE
    result = asyncio.run(_pinged(arguments.source.strip(), target, settings))
    _print(report.ping_json(result), lambda _: report.ping_text(result), arguments.json)
    if result.outcome == ping.UNREACHABLE:
        return ExitStatus.USAGE
    return ExitStatus.OK if result.delivered else ExitStatus.FAILED


async def _pinged(source: str, target: URL, settings: Settings) -> ping.PingResult:
    policy = outbound.policy_for(settings, way_out=True)
    async with outbound.open_session(settings, policy) as session:
        return await ping.ping(session, policy, settings, source, target)


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (its shape is in the README)")


def _absolute_url(name: str, text: str) -> URL | None:
    url = http_url(text)
    if url is None:
        print(f"pingproxy: {name} must be an absolute http(s) URL: {text!r}", file=sys.stderr)
    return url


def _print(document: dict, as_text: Callable[[dict], str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(as_text(document), end="")


def _send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE_URL",
                        help="a post whose links are told (a 410 Gone page: its deletion), or "
                             "a feed (RSS, Atom, JSON Feed, or a page with an h-feed) whose "
                             "entries are each sent as a post")
    parser.add_argument("--also", metavar="URL", nargs="+", action="extend", default=[],
                        help="more targets, such as links the post no longer has")
    parser.add_argument("--previous", metavar="REPORT.json",
                        help="an earlier run's --json report: its targets are told too; for "
                             "a feed, each entry's, and entries it sent unchanged are left")
    parser.add_argument("--entries", metavar="N", type=int,
                        help=f"a feed: its newest N entries at most (default {DEFAULT_ENTRIES}, "
                             "up to --send-max-entries)")
    parser.add_argument("--since", metavar="WHEN",
                        help="a feed: only entries updated or published after WHEN, an ISO "
                             "8601 date or time (2026-11-01, 2026-11-01T12:00:00Z) or a "
                             "duration before now (2d, 12h, 30m, 1w); undated entries are left")
    parser.add_argument("--self", dest="include_self", action="store_true",
                        help="also tell pages of the source's own site")
    parser.add_argument("--media", action="store_true",
                        help="also tell the sources of the post's images, videos and audio")
    parser.add_argument("--dry-run", action="store_true",
                        help="discover and report, send nothing")
    _json_argument(parser)


def _send(arguments: argparse.Namespace, settings: Settings) -> ExitStatus:
    source = _absolute_url("SOURCE_URL", arguments.source)
    if source is None:
        return ExitStatus.USAGE
    try:
        request = SendRequest(source, also=tuple(arguments.also),
                              previous=_previous(arguments.previous),
                              include_self=arguments.include_self, media=arguments.media,
                              dry_run=arguments.dry_run,
                              entries=_entries(arguments.entries, settings),
                              since=_since(arguments.since))
    except _UsageError as error:
        print(f"pingproxy: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    try:
        with _progress_bars() as progress:
            report = asyncio.run(_run_send(settings, request, progress))
    except SourceUnusable as error:
        print(f"pingproxy: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    if isinstance(report, FeedReport):
        print(json.dumps(as_feed_json(report), indent=2) if arguments.json
              else feed_table(report))
    else:
        print(json.dumps(as_json(report), indent=2) if arguments.json else table(report))
    return ExitStatus.OK if report.ok else ExitStatus.FAILED


class _UsageError(ValueError):
    """A send argument that cannot be used; the message names it."""


def _previous(path: str | None) -> Previous:
    if path is None:
        return Previous()
    try:
        with open(path, encoding="utf-8") as file:
            return read_previous(json.load(file))
    except (OSError, ValueError) as error:
        raise _UsageError(f"--previous {path}: {error}") from None


def _entries(entries: int | None, settings: Settings) -> int:
    if entries is None:
        return min(DEFAULT_ENTRIES, settings.send_max_entries)
    if not 1 <= entries <= settings.send_max_entries:
        raise _UsageError(f"--entries {entries}: expected a number from 1 to "
                          f"{settings.send_max_entries} (--send-max-entries)")
    return entries


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return feeds.parse_since(text, datetime.now(UTC))
    except ValueError as error:
        raise _UsageError(f"--since {text!r}: {error}") from None


async def _run_send(settings: Settings, request: SendRequest,
                    progress: SiteProgress) -> SendReport | FeedReport:
    policy = outbound.policy_for(settings, way_out=True)
    async with outbound.open_session(settings, policy) as session:
        sender = SiteSender(Sender(session, policy, settings))
        return await sender.send(request, progress=progress)


@contextmanager
def _progress_bars() -> Iterator[SiteProgress]:
    """Progress on stderr when it is a terminal, nothing when piped: every target, and a
    feed's entries above (that bar appears with the first entry)."""
    shown = sys.stderr.isatty()
    with ExitStack() as bars:
        # Every target ends in a redraw (mininterval=0): there are at most a few hundred.
        targets = bars.enter_context(tqdm(total=0, unit="target", file=sys.stderr, leave=False,
                                          mininterval=0, disable=not shown, position=1))
        entries: list[tqdm] = []

        def on_targets(done: int, total: int) -> None:
            targets.total = total
            targets.update(done - targets.n)

        def on_entries(done: int, total: int) -> None:
            if not entries:
                entries.append(bars.enter_context(tqdm(
                    total=total, unit="entry", file=sys.stderr, leave=False, mininterval=0,
                    disable=not shown, position=0)))
            entries[0].update(done - entries[0].n)

        yield SiteProgress(on_entries, on_targets)


COMMANDS: Mapping[str, Command] = {
    "serve": Command("receive pingbacks and forward them as WebMentions (the default)",
                     _no_arguments, _serve),
    "check": Command("check a page's set-up: what senders find, whether its endpoints answer "
                     "(to probes that receivers verifying the source refuse), and the fix",
                     _check_arguments, _check),
    "ping": Command("send one pingback from SOURCE to TARGET, as a blog does, and show the "
                    "answer", _ping_arguments, _ping),
    "send": Command("tell every page a post links to, by WebMention or Pingback; given a "
                    "feed, do so for each of its newest entries",
                    _send_arguments, _send),
}
