"""The README tells the truth about settings and outcomes."""

from pathlib import Path

import pytest

from pingproxy.config import OPTIONS
from pingproxy.errors import FAULT_CODES, Outcome
from pingproxy.webmention import ERROR_PHRASES

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
