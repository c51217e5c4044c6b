"""Tests of .dockerignore pattern matching."""

from layercake._dockerignore import IgnoreRules


def test_plain_name_excludes_the_file_and_everything_under_a_directory():
    """A bare name matches that path and, for a directory, its contents."""
    rules = IgnoreRules.parse("build\n")
    assert [rules.excludes(p) for p in ("build", "build/x.o", "src/build")] == [
        True,
        True,
        False,
    ]


def test_comments_blank_lines_and_leading_slash_are_handled():
    """Comments and blanks are skipped; a leading slash means the context root."""
    rules = IgnoreRules.parse("# a comment\n\n/secret.txt\n")
    assert rules.excludes("secret.txt") is True
    assert rules.excludes("# a comment") is False


def test_star_stays_within_one_component_and_double_star_crosses_them():
    """`*` does not match '/', `**` matches any depth including none."""
    rules = IgnoreRules.parse("*.log\n**/*.tmp\n")
    assert rules.excludes("app.log") is True
    assert rules.excludes("logs/app.log") is False
    assert rules.excludes("a.tmp") is True
    assert rules.excludes("deep/down/b.tmp") is True


def test_exception_reincludes_and_the_last_matching_pattern_wins():
    """`!` re-includes a path; a later exclude overrides it again."""
    rules = IgnoreRules.parse("*.md\n!README.md\nREADME.md\n!docs/*.md\n")
    assert rules.excludes("CHANGES.md") is True
    assert rules.excludes("README.md") is True
    assert rules.excludes("docs/guide.md") is False


def test_character_class_with_negation():
    """`[!a]` and `[^a]` both negate the class, as Go's filepath.Match does."""
    rules = IgnoreRules.parse("file[!a].txt\n")
    assert rules.excludes("fileb.txt") is True
    assert rules.excludes("filea.txt") is False
