"""The tutorial's pytest example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs/tutorial.md"


@pytest.mark.usefixtures("container_runtime")
def test_tutorial_pytest_example_passes(pytester, store, busybox):
    """The service-container test from docs/tutorial.md passes for real."""
    text = TUTORIAL.read_text()
    section = text[text.index("## 7. A pytest suite") :]
    (example,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    pytester.makepyfile(test_service=example)
    result = pytester.runpytest_subprocess(
        f"--layercake-store={store.path}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
