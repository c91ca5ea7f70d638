"""registryd's parsers, no sockets: names, tags, digests, Range / Content-Range, request
bodies (Content-Length and chunked), Accept headers and manifests."""

from __future__ import annotations

import io
import json

import pytest

from registryd.api.manifests import accept_list
from registryd.body import BadBody, BodyReader, IncompleteBody, TooLarge
from registryd.errors import ApiError
from registryd.manifests import DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, parse
from registryd.names import (
    Digest,
    check_name,
    check_reference,
    check_upload_id,
    is_name,
    parse_digest,
)
from registryd.ranges import ByteRange, Unsatisfiable, parse_content_range, parse_range

SHA = "a" * 64


@pytest.mark.parametrize(
    "name",
    ["a", "library/busybox", "a.b_c__d-e---f/g0", "x/" * 100 + "y", "0/1/2"],
)
def test_valid_names(name: str) -> None:
    assert is_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../x",
        "a/../b",
        "/a",
        "a/",
        "A",
        "abC/d",
        "a//b",
        "_a",
        "a/_layers",
        "a..b",
        "a_-b",
        "a___b",
        "a" * 256,
        "a b",
        "a\nb",
        "ä",
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_name(name)
    with pytest.raises(ApiError) as caught:
        check_name(name)
    assert (caught.value.status, caught.value.code) == (400, "NAME_INVALID")


def test_name_length_limit_is_255() -> None:
    assert is_name("a" * 255)
    assert not is_name("a" * 256)


def test_digests() -> None:
    assert parse_digest(f"sha256:{SHA}") == Digest("sha256", SHA)
    assert str(parse_digest("sha512:" + "0" * 128)) == "sha512:" + "0" * 128
    for bad in (
        f"sha256:{SHA[:-1]}",  # short
        f"sha256:{SHA}0",  # long
        f"sha256:{SHA.upper()}",  # upper-case hex
        "sha512:" + "0" * 64,  # wrong length for the algorithm
        f"md5:{SHA}",  # unsupported algorithm
        f"sha256:../{SHA[3:]}",
        SHA,
        "",
    ):
        with pytest.raises(ApiError) as caught:
            parse_digest(bad)
        assert (caught.value.status, caught.value.code) == (400, "DIGEST_INVALID"), bad


def test_references() -> None:
    assert check_reference("latest") == "latest"
    assert check_reference("_v1.0-rc.1") == "_v1.0-rc.1"
    assert check_reference(f"sha256:{SHA}") == Digest("sha256", SHA)
    for bad in (".hidden", "-x", "a" * 129, "a/b", "..", "a b"):
        with pytest.raises(ApiError):
            check_reference(bad)


def test_upload_ids() -> None:
    assert check_upload_id("0" * 32) == "0" * 32
    for bad in ("../../etc", "0" * 31, "G" * 32, "0" * 33):
        with pytest.raises(ApiError) as caught:
            check_upload_id(bad)
        assert caught.value.code == "BLOB_UPLOAD_UNKNOWN"


# -- ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=5-", ByteRange(5, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-1000", ByteRange(0, 99)),
        ("bytes=90-1000", ByteRange(90, 99)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=0-1,5-6", None),  # multi-range: served whole
        ("items=0-1", None),
        ("bytes=9-5", None),
        ("bytes=a-b", None),
        ("bytes=", None),
    ],
)
def test_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_range(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_content_range() -> None:
    assert parse_content_range("0-99") == ByteRange(0, 99)
    assert parse_content_range("bytes 10-19/*") == ByteRange(10, 19)
    assert parse_content_range("bytes=10-19") == ByteRange(10, 19)
    assert parse_content_range("0-99").length == 100
    for bad in ("", "5", "9-5", "-5", "a-b", "1-2-3"):
        assert parse_content_range(bad) is None


# -- bodies --------------------------------------------------------------------------------------


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return out + b"0\r\n" + trailer + b"\r\n"


def read_all(body: BodyReader, size: int = 7) -> bytes:
    out = bytearray()
    buffer = memoryview(bytearray(size))
    while n := body.readinto(buffer):
        out += buffer[:n]
    return bytes(out)


def test_content_length_body() -> None:
    stream = io.BytesIO(b"hello worldNEXT")
    body = BodyReader(stream, 11)
    assert read_all(body) == b"hello world"
    assert body.done and body.received == 11
    assert stream.read() == b"NEXT"  # the next request is left alone


def test_chunked_body_fills_the_buffer_across_chunks() -> None:
    stream = io.BytesIO(chunked(b"ab", b"cde", b"f" * 10, trailer=b"X-T: 1\r\n") + b"NEXT")
    body = BodyReader(stream, None, chunked=True)
    buffer = memoryview(bytearray(64))
    assert body.readinto(buffer) == 15  # one call, three chunks
    assert bytes(buffer[:15]) == b"abcde" + b"f" * 10
    assert body.readinto(buffer) == 0 and body.done
    assert stream.read() == b"NEXT"


def test_empty_chunked_body() -> None:
    body = BodyReader(io.BytesIO(b"0\r\n\r\n"), None, chunked=True)
    assert read_all(body) == b""
    assert body.done


def test_short_bodies_raise_incomplete_with_what_arrived() -> None:
    body = BodyReader(io.BytesIO(b"12345"), 10)
    buffer = memoryview(bytearray(16))
    with pytest.raises(IncompleteBody) as caught:
        body.readinto(buffer)
    assert caught.value.received == 5 and bytes(buffer[:5]) == b"12345"
    body = BodyReader(io.BytesIO(b"5\r\nabcde\r\n3\r\nab"), None, chunked=True)
    with pytest.raises(IncompleteBody) as caught:
        body.readinto(buffer)
    assert caught.value.received == 7


@pytest.mark.parametrize(
    "raw",
    [b"zz\r\nab\r\n0\r\n\r\n", b"2\r\nabXX0\r\n\r\n", b"-1\r\n", b"1" * 5000 + b"\r\n"],
)
def test_malformed_chunked_bodies(raw: bytes) -> None:
    body = BodyReader(io.BytesIO(raw), None, chunked=True)
    with pytest.raises(BadBody):
        read_all(body)


def test_read_limit_and_continue_hook() -> None:
    calls = []
    body = BodyReader(io.BytesIO(b"x" * 10), 10, before_read=lambda: calls.append(1))
    assert not body.started
    assert body.read(10) == b"x" * 10
    assert calls == [1]
    with pytest.raises(TooLarge):
        BodyReader(io.BytesIO(b"x" * 10), 10).read(9)
    with pytest.raises(TooLarge):
        BodyReader(io.BytesIO(chunked(b"x" * 10)), None, chunked=True).read(9)


def test_drain_never_triggers_100_continue() -> None:
    calls = []
    body = BodyReader(io.BytesIO(b"x" * 10), 10, before_read=lambda: calls.append(1))
    assert body.drain(1 << 20) is False  # the client waits: nothing was sent
    assert calls == []


# -- Accept and manifests ----------------------------------------------------------------------


def test_accept_list() -> None:
    header = f"{OCI_MANIFEST}, {DOCKER_LIST};q=0.5, text/html;q=0, */*"
    assert accept_list(header) == [OCI_MANIFEST, DOCKER_LIST, "*/*"]
    assert accept_list(None) == []


def descriptor(media_type: str = "application/vnd.oci.image.layer.v1.tar", n: int = 1) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + f"{n:x}" * 64, "size": n}


def image(**extra: object) -> dict:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", 1),
        "layers": [descriptor(n=2)],
    }
    manifest.update(extra)
    return manifest


def test_parse_image_manifest() -> None:
    manifest = parse(json.dumps(image()).encode(), OCI_MANIFEST)
    assert manifest.media_type == OCI_MANIFEST
    assert [str(b.digest) for b in manifest.blobs] == ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    assert manifest.subject is None


def test_parse_infers_the_media_type() -> None:
    assert parse(json.dumps({**image(), "mediaType": None}).encode(), None).media_type == (
        OCI_MANIFEST
    )
    index = {"schemaVersion": 2, "manifests": [descriptor(OCI_MANIFEST, 3)]}
    manifest = parse(json.dumps(index).encode(), "application/octet-stream")
    assert manifest.media_type == OCI_INDEX and manifest.is_index


def test_referrer_descriptor_takes_artifact_type_or_config_type() -> None:
    subject = descriptor(OCI_MANIFEST, 9)
    signed = image(subject=subject, annotations={"k": "v"})
    manifest = parse(json.dumps(signed).encode(), OCI_MANIFEST)
    assert str(manifest.subject) == subject["digest"]
    d = manifest.referrer_descriptor(Digest("sha256", SHA), 5)
    assert d == {
        "mediaType": OCI_MANIFEST,
        "digest": f"sha256:{SHA}",
        "size": 5,
        "artifactType": "application/vnd.oci.image.config.v1+json",
        "annotations": {"k": "v"},
    }
    typed = parse(json.dumps(image(artifactType="application/x.sig")).encode(), OCI_MANIFEST)
    assert typed.referrer_descriptor(Digest("sha256", SHA), 5)["artifactType"] == (
        "application/x.sig"
    )


@pytest.mark.parametrize(
    ("body", "content_type", "wording"),
    [
        (b"{not json", OCI_MANIFEST, "not valid JSON"),
        (b"[]", OCI_MANIFEST, "a manifest is a JSON object"),
        (b"\xff\xfe", OCI_MANIFEST, "not valid JSON"),
        (json.dumps(image(schemaVersion=3)).encode(), OCI_MANIFEST, "schemaVersion must be 2"),
        (json.dumps(image(schemaVersion=1)).encode(), OCI_MANIFEST, "schema1"),
        (json.dumps(image()).encode(), OCI_INDEX, "does not match Content-Type"),
        (json.dumps(image(mediaType="x/y")).encode(), None, "unsupported manifest media type"),
        (json.dumps(image(config=None)).encode(), OCI_MANIFEST, "config must be a descriptor"),
        (json.dumps(image(layers={})).encode(), OCI_MANIFEST, "layers must be an array"),
        (
            json.dumps(
                image(layers=[{"mediaType": "x", "digest": "sha256:1", "size": 1}])
            ).encode(),
            OCI_MANIFEST,
            "layers[0].digest is not a valid digest",
        ),
        (
            json.dumps(image(layers=[{**descriptor(), "size": -1}])).encode(),
            OCI_MANIFEST,
            "layers[0].size must be a non-negative integer",
        ),
        (json.dumps(image(subject="x")).encode(), OCI_MANIFEST, "subject must be a descriptor"),
        (json.dumps(image(annotations={"a": 1})).encode(), OCI_MANIFEST, "annotations"),
    ],
)
def test_invalid_manifests(body: bytes, content_type: str | None, wording: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse(body, content_type)
    assert caught.value.code == "MANIFEST_INVALID" and caught.value.status == 400
    assert wording in caught.value.message
