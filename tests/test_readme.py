"""The README tells the truth about settings and outcomes."""

import re
from pathlib import Path

import pytest

from pingproxy.concerns import CONCERN_CODES
from pingproxy.config import OPTIONS
from pingproxy.discovery import MAX_TARGET_REDIRECTS
from pingproxy.discovery_cache import MAX_CACHED_TARGETS, MAX_DISCOVERIES_PER_HOST
from pingproxy.errors import FAULT_CODES, Outcome
from pingproxy.pingback import MAX_XML_DEPTH
from pingproxy.webmention import ERROR_PHRASES, MAX_ENDPOINT_REDIRECTS
from tests.test_check_command_functional import PAGE_KEYS, PROBE_KEYS, REPORT_KEYS

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.flag)
def test_every_option_is_in_the_configuration_table(option):
    row = next((line for line in README.splitlines() if line.startswith(f"| `{option.flag}` |")),
               None)

    assert row is not None
    for variable in option.environment:
        assert f"`{variable}`" in row


@pytest.mark.parametrize("outcome", [o for o in Outcome if o in FAULT_CODES],
                         ids=lambda outcome: outcome.value)
def test_every_fault_outcome_is_in_a_table_with_its_code(outcome):
    code = FAULT_CODES[outcome]
    rows = [line for line in README.splitlines()
            if line.startswith("|") and f"`{outcome.value}`" in line]

    assert rows, f"{outcome.value} is not in the README"
    assert any(f"fault {code}" in row for row in rows)


@pytest.mark.parametrize("phrase", ERROR_PHRASES)
def test_every_error_phrase_is_in_the_fault_table_with_its_code(phrase):
    code = FAULT_CODES[ERROR_PHRASES[phrase]]
    rows = [line for line in README.splitlines()
            if line.startswith("|") and f'"{phrase}"' in line]

    assert any(f"fault {code} " in row for row in rows)


def _table_rows(first_cell: str) -> list[str]:
    return [line for line in README.splitlines() if line.startswith(f"| {first_cell} |")]


@pytest.mark.parametrize("key", sorted(REPORT_KEYS | PAGE_KEYS | PROBE_KEYS))
def test_every_field_of_the_check_json_is_documented(key):
    table = README.split("`--json` prints the same report as one JSON object:")[1].split("\n\n")[1]

    assert re.search(rf"`{key}`|[{{,] ?{key}\b", table)


@pytest.mark.parametrize("code", CONCERN_CODES)
def test_every_concern_is_in_the_concern_table(code):
    assert _table_rows(f"`{code}`")


def limits_table() -> list[str]:
    section = README.partition("\n### Limits\n")[2].partition("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


# Settings that are not a bound on what a client, a page or a run may cost.
NOT_LIMITS = {"send_tokens", "send_allowed_sources", "send_retry_backoff_seconds"}
LIMIT_OPTIONS = [option for option in OPTIONS if option.name not in NOT_LIMITS and (
    option.name.startswith(("max_", "discovery_", "send_")) or "rate_limit" in option.name
    or option.name.endswith("timeout_seconds") or option.name == "grace_seconds")]


@pytest.mark.parametrize("option", LIMIT_OPTIONS, ids=lambda option: option.flag)
def test_every_limit_is_in_the_limits_table_with_its_setting(option):
    rows = [row for row in limits_table() if f"`{option.flag}`" in row.split(" | ")[2]]

    assert len(rows) == 1
    assert f"`{option.environment[0]}`" in rows[0]


@pytest.mark.parametrize(("constant", "text"), [
    (MAX_ENDPOINT_REDIRECTS, "endpoint redirects (307, 308) | {}"),
    (MAX_TARGET_REDIRECTS, "target redirects in discovery | {}"),
    (MAX_DISCOVERIES_PER_HOST, "discoveries at once per target host | {}"),
    (MAX_CACHED_TARGETS, "{:,} targets"),
    (MAX_XML_DEPTH, "XML nesting | {} levels"),
])
def test_the_fixed_limits_in_the_table_are_the_codes(constant, text):
    assert any(text.format(constant) in row for row in limits_table())


def dependency_rows() -> list[str]:
    """The first cell of each row of the dependency table."""
    table = README[README.index("## Dependencies, and why each is there"):]
    return [line.split("|")[1].strip() for line in table.splitlines()[4:]
            if line.startswith("| ")]


def test_each_dependency_is_in_the_dependency_table_once():
    names = [name.strip() for row in dependency_rows()
             for name in row.split("(")[0].split(",")]

    assert sorted(names) == sorted(set(names))
    assert "tqdm" in names


def test_the_readme_names_the_command_where_make_run_puts_it():
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()

    assert "VENV ?= .venv" in makefile and "$(BIN)/pingproxy $(ARGS)" in makefile
    assert "`.venv/bin/pingproxy`" in README
