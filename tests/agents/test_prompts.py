from __future__ import annotations

import pytest

from agents._prompts import TEMPLATES, render, template


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_renders_with_its_variables_and_fails_without(name: str) -> None:
    variables = {v: f"<{v}>" for v in template(name).get_identifiers()}
    rendered = render(name, **variables)
    assert all(f"<{v}>" in rendered for v in variables)
    if variables:
        with pytest.raises(KeyError):
            render(name)
