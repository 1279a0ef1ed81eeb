"""The README tells the truth about settings and outcomes."""

import re
from pathlib import Path

import pytest

from pingproxy import findings
from pingproxy.config import OPTIONS
from pingproxy.errors import FAULT_CODES, Outcome
from pingproxy.webmention import ERROR_PHRASES
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


@pytest.mark.parametrize("code", findings.CONCERN_CODES)
def test_every_concern_is_in_the_concern_table(code):
    assert _table_rows(f"`{code}`")
