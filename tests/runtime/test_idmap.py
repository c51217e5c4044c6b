"""The rootless id map: subordinate ranges read as shadow's tools read them."""

from __future__ import annotations

from pathlib import Path

from layercake.runtime import IdMap
from layercake.runtime._idmap import read_ranges

FULL = IdMap(
    uid_lines=((0, 1000, 1), (1, 100000, 65536)),
    gid_lines=((0, 1000, 1), (1, 200000, 65536)),
    newuidmap="/usr/bin/newuidmap",
    newgidmap="/usr/bin/newgidmap",
)


def test_ranges_are_found_by_name_or_number(tmp_path: Path) -> None:
    """The first well-formed, non-empty entry for the name or uid counts."""
    subuid = tmp_path / "subuid"
    subuid.write_text(
        "bob:300000:65536\n"
        "alice:oops:10\n"
        "alice:400000:0\n"
        "1000:500000:65536\n"
        "alice:600000:65536\n"
    )

    assert read_ranges(str(subuid), "alice", 1000) == (500000, 65536)
    assert read_ranges(str(subuid), "carol", 1001) is None
    assert read_ranges(str(tmp_path / "missing"), "alice", 1000) is None


def test_full_map_translates_ids_both_ways() -> None:
    """Inside ids map to the user and the range; host ids map back, else 65534."""
    assert FULL.full and FULL.size == 65537
    assert (FULL.to_host_uid(0), FULL.to_host_uid(1000)) == (1000, 100999)
    assert FULL.to_host_gid(65537) is None
    assert FULL.to_inside(1000, 1000) == (0, 0)
    assert FULL.to_inside(100999, 200999) == (1000, 1000)
    assert FULL.to_inside(5, 5) == (65534, 65534)


def test_single_map_holds_only_root() -> None:
    """Without helpers the map is the user alone, uid 0 inside."""
    single = IdMap(uid_lines=((0, 1000, 1),), gid_lines=((0, 1000, 1),))
    assert (single.full, single.size) == (False, 1)
