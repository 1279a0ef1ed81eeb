"""The fault table: every outcome has a code, and every code a meaning."""

import pytest

from pingproxy.errors import FAULT_CODES, FAULT_MEANINGS, Outcome, fault_meaning


@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.SUCCESS],
                         ids=lambda outcome: outcome.value)
def test_every_failure_outcome_has_a_fault_code_with_a_meaning(outcome):
    assert FAULT_CODES[outcome] in FAULT_MEANINGS


@pytest.mark.parametrize(("code", "words"), [
    (0x0011, "does not contain a link"),
    (0x0030, "already been registered"),
    (0x0032, "upstream"),
    (-32601, "method not found"),
])
def test_fault_meaning_speaks_the_specifications_words(code, words):
    assert words in fault_meaning(code)


def test_a_code_outside_both_specifications_is_named_as_such():
    assert "neither" in fault_meaning(12345)
