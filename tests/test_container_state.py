"""Tests of a container's records: config.json and state.json as written and read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from layercake._container_state import (
    ContainerState,
    read_state,
    write_state,
)

STATE = ContainerState(
    status="running",
    pid=10,
    pid_start=11,
    monitor_pid=12,
    monitor_start=13,
    exit_code=3,
    started_at="2026-12-04T21:00:00.000000001Z",
    error="e",
    cgroup_version=2,
    cgroup_paths=("/sys/fs/cgroup/x",),
    warnings=("w",),
    ports=((80, "tcp", "127.0.0.1", 8080),),
    paused=True,
    attached=True,
    restarting=True,
    restart_count=4,
)


def test_a_state_reads_back_equal_to_the_one_written(tmp_path: Path) -> None:
    """Every field of state.json, tuples included, reads back as written."""
    write_state(tmp_path, STATE)

    assert read_state(tmp_path) == STATE


def test_a_state_with_values_of_other_types_reads_as_before(tmp_path: Path) -> None:
    """A number written as text is converted; a bad status makes the container dead."""
    (tmp_path / "state.json").write_text('{"status":"exited","exit_code":"2"}')
    assert read_state(tmp_path) == ContainerState(status="exited", exit_code=2)

    (tmp_path / "state.json").write_text('{"status":"sleeping"}')
    state = read_state(tmp_path)
    assert (state.status, state.error.startswith(f"cannot read {tmp_path}")) == (
        "dead",
        True,
    )


def test_a_state_that_is_not_json_makes_the_container_dead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A state.json cut short reads as dead, with a warning naming the file."""
    (tmp_path / "state.json").write_text('{"status":"run')
    with caplog.at_level(logging.WARNING):
        state = read_state(tmp_path)

    path = tmp_path / "state.json"
    assert state.status == "dead"
    assert state.error == (
        f"cannot read {path}: Unterminated string starting at: line 1 column 11 "
        "(char 10)"
    )
    assert f"cannot read {path}, the container is taken as dead" in caplog.text


def test_state_json_is_compact_with_fields_in_order(tmp_path: Path) -> None:
    """state.json is one compact JSON object, as other processes read it."""
    write_state(tmp_path, ContainerState())

    text = (tmp_path / "state.json").read_text()
    assert text.startswith('{"status":"created","pid":0,')
    assert json.loads(text)["ports"] == []
