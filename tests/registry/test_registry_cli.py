"""layercake push and pull from the command line, against a real registry."""

from __future__ import annotations

from layercake.cli import main


def test_push_then_pull_into_another_store(busybox, registry, tmp_path, capfd):
    """push prints the digest; pull into an empty store gets the same image."""
    reference = f"{registry.host}/cli/busybox:1"
    store = str(busybox.store.path)
    assert main(["--store", store, "tag", "busybox", reference]) == 0
    assert main(["--store", store, "push", reference]) == 0
    pushed = capfd.readouterr().out.splitlines()[-1]
    assert pushed.startswith("Digest: sha256:")

    other = str(tmp_path / "other")
    assert main(["--store", other, "pull", reference]) == 0
    assert capfd.readouterr().out.splitlines()[-1] == pushed
    assert main(["--store", other, "images", "-q"]) == 0
    assert capfd.readouterr().out == busybox.short_id + "\n"


def test_pull_of_a_missing_tag_is_one_line_and_125(registry, tmp_path, capfd):
    """The registry's MANIFEST_UNKNOWN becomes one clear line."""
    reference = f"{registry.host}/cli/absent:1"
    assert main(["--store", str(tmp_path / "s"), "pull", reference]) == 125
    err = capfd.readouterr().err
    assert err.startswith(f"layercake: error: manifest pull failed for {reference}: ")
    assert "MANIFEST_UNKNOWN" in err
