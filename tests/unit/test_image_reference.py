"""Image references with docker's defaults and distribution/reference's grammar: what is
accepted and how it is normalised, and what is refused with the part that is wrong."""

from __future__ import annotations

import pytest

from imagetools.errors import InvalidReference
from imagetools.reference import Reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("alice/app", "docker.io/alice/app:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("registry-1.docker.io/alice/app:2", "docker.io/alice/app:2"),
        ("localhost/x", "localhost/x:latest"),
        ("localhost:5000/a/b:v1.0_rc-2", "localhost:5000/a/b:v1.0_rc-2"),
        ("127.0.0.1:5000/a", "127.0.0.1:5000/a:latest"),
        ("[::1]:5000/a:1", "[::1]:5000/a:1"),
        ("Host.Example/a", "Host.Example/a:latest"),  # an upper-case first part is a host
        (f"quay.io/a/b@{DIGEST}", f"quay.io/a/b@{DIGEST}"),
        (f"quay.io/a/b:1@{DIGEST}", f"quay.io/a/b:1@{DIGEST}"),
        ("a__b/c-d/e.f", "docker.io/a__b/c-d/e.f:latest"),
    ],
)
def test_accepted_references_are_normalised_like_docker(text: str, normalised: str) -> None:
    assert str(Reference.parse(text)) == normalised


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("", "empty or padded"),
        (" busybox", "empty or padded"),
        ("busybox\n", "empty or padded"),
        ("a/B:1", "repository 'a/B' must be lowercase"),
        ("Upper", "must be lowercase"),
        ("localhost/h:é", "bad tag"),  # tags are ASCII
        ("localhost/cc\n:2", "repository 'cc\\n'"),  # $ would have matched before the \n
        ("example.com\n/cc:2", "bad registry"),
        ("localhost/h:" + "t" * 129, "bad tag"),
        ("localhost/h:-x", "bad tag"),
        ("localhost/h@sha256:ABCDEF0123456789ABCDEF0123456789", "bad digest"),
        ("localhost/h@sha256:" + "a" * 63, "bad digest"),  # sha256 is 64 hex digits
        ("localhost/h@md5:" + "a" * 32, "bad digest"),  # not a registered algorithm
        ("localhost/a//b", "must be lowercase"),
        ("localhost/a/../b", "must be lowercase"),
        ("bad_host:5000/x/" + "y" * 10, "bad registry"),
        ("localhost/" + "a" * 300, "longer than 255"),
    ],
)
def test_refused_references_say_which_part_is_wrong(text: str, wrong: str) -> None:
    with pytest.raises(InvalidReference, match="invalid reference") as caught:
        Reference.parse(text)
    assert wrong in caught.value.message
