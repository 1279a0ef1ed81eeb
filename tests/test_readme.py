"""The README tells the truth about settings and outcomes."""

from pathlib import Path

import pytest

from pingproxy.config import OPTIONS
from pingproxy.discovery import MAX_TARGET_REDIRECTS
from pingproxy.discovery_cache import MAX_CACHED_TARGETS, MAX_DISCOVERIES_PER_HOST
from pingproxy.errors import FAULT_CODES, Outcome
from pingproxy.pingback import MAX_XML_DEPTH
from pingproxy.webmention import MAX_ENDPOINT_REDIRECTS

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


def limits_table() -> list[str]:
    section = README.partition("\n### Limits\n")[2].partition("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


LIMIT_OPTIONS = [option for option in OPTIONS
                 if option.name.startswith(("max_", "discovery_"))
                 or option.name.endswith("timeout_seconds") or option.name == "grace_seconds"]


@pytest.mark.parametrize("option", LIMIT_OPTIONS, ids=lambda option: option.flag)
def test_every_limit_is_in_the_limits_table_with_its_setting(option):
    rows = [row for row in limits_table() if f"| `{option.flag}`" in row]

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
