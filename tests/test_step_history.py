"""Tests of the explanation of cache misses."""

from layercake._step_history import StepHistory, explain_miss

BASE = {"parent": "sha256:a", "instruction": "RUN x", "args": {"A": "1"}, "sources": ""}


def test_each_difference_is_named():
    """The first difference, in key order, is the reason given."""
    assert explain_miss(None, BASE) == "this step has not been built before"
    assert explain_miss({**BASE, "parent": "sha256:b"}, BASE) == (
        "an earlier step changed, so this step starts from a new image"
    )
    assert explain_miss({**BASE, "instruction": "RUN y"}, BASE) == (
        "the instruction changed"
    )
    assert explain_miss({**BASE, "args": {"A": "2", "B": "1"}}, BASE) == (
        "build arguments changed: A, B"
    )
    assert explain_miss({**BASE, "sources": "x"}, BASE) == "the files it reads changed"
    assert explain_miss(BASE, BASE) == (
        "its cache entry is gone (pruned, or its blobs were removed)"
    )


def test_history_survives_a_new_instance(tmp_path):
    """What one build recorded, the next process reads."""
    slot = StepHistory.slot("/ctx/Dockerfile", 0, 3, "RUN x")
    first = StepHistory(tmp_path / "steps.sqlite")
    first.record(slot, BASE)
    first.close()
    second = StepHistory(tmp_path / "steps.sqlite")
    assert second.last(slot) == BASE
    second.close()
