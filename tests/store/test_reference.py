"""Tests for parsing and normalising image references."""

import pytest

from layercake.errors import InvalidReference
from layercake.store import Digest, Reference

HEX = "0123456789abcdef" * 4
DIGEST = Digest("sha256", HEX)


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "familiar", "canonical"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None,
         "busybox:latest", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None,
         "busybox:1.36", "docker.io/library/busybox:1.36"),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None,
         "busybox:latest", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest",
         None, "busybox:latest", "docker.io/library/busybox:latest"),
        ("user/app", "docker.io", "user/app", "latest", None,
         "user/app:latest", "docker.io/user/app:latest"),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None,
         "localhost:5000/app:dev", "localhost:5000/app:dev"),
        ("localhost/app", "localhost", "app", "latest", None,
         "localhost/app:latest", "localhost/app:latest"),
        ("ghcr.io/org/team/tool:v1.2_3-rc", "ghcr.io", "org/team/tool", "v1.2_3-rc",
         None, "ghcr.io/org/team/tool:v1.2_3-rc", "ghcr.io/org/team/tool:v1.2_3-rc"),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None,
         "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
        ("Registry/app", "Registry", "app", "latest", None,
         "Registry/app:latest", "Registry/app:latest"),
        ("a__b-c--d/e.f_g", "docker.io", "a__b-c--d/e.f_g", "latest", None,
         "a__b-c--d/e.f_g:latest", "docker.io/a__b-c--d/e.f_g:latest"),
        (f"busybox@sha256:{HEX}", "docker.io", "library/busybox", None, DIGEST,
         f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}"),
        (f"q.io/x:t@sha256:{HEX}", "q.io", "x", "t", DIGEST,
         f"q.io/x:t@sha256:{HEX}", f"q.io/x:t@sha256:{HEX}"),
    ],
)  # fmt: skip
def test_valid_references_normalise_like_docker(
    text: str,
    domain: str,
    path: str,
    tag: str | None,
    digest: Digest | None,
    familiar: str,
    canonical: str,
) -> None:
    """Each valid reference gets Docker's domain, path, tag and short form."""
    reference = Reference.parse(text)
    assert reference == Reference(domain=domain, path=path, tag=tag, digest=digest)
    assert reference.familiar == familiar
    assert reference.canonical == canonical
    assert str(reference) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty reference"),
        ("Busybox", "repository name must be lowercase"),
        ("docker.io/User/app", "repository name must be lowercase"),
        ("a//b", "invalid reference format"),
        ("-app", "invalid reference format"),
        ("app-", "invalid reference format"),
        ("a..b", "invalid reference format"),
        (":tag", "invalid reference format"),
        ("app:", "invalid tag ''"),
        ("app:-x", "invalid tag '-x'"),
        ("app:" + "t" * 129, "invalid tag '" + "t" * 129 + "'"),
        ("a/b:c:d", "invalid reference format"),
        ("app@sha256:abc", "invalid digest 'sha256:abc'"),
        ("app@", "invalid digest ''"),
        ("-bad.io/app", "invalid domain '-bad.io'"),
        ("a.b__c/f", "invalid domain 'a.b__c'"),
        (HEX, "cannot specify 64-byte hexadecimal strings as a name"),
        ("a/" + "b" * 250, "repository name must not be more than 255 characters"),
        ("app name", "invalid reference format"),
    ],
)
def test_invalid_references_name_the_text(text: str, reason: str) -> None:
    """Each invalid reference raises InvalidReference with the text and reason."""
    with pytest.raises(InvalidReference) as info:
        Reference.parse(text)
    assert str(info.value) == f"invalid reference {text!r}: {reason}"
    assert info.value.reference == text
