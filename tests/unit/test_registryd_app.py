"""registryd's routes end to end in memory: a ``Request`` in, a ``Response`` out, the real
storage in tmp_path, no socket. Covers every endpoint's success and error shapes, read-only
mode, and how core maps an authorizer's decisions (a fake Authorizer stands in for
registryd.auth)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from registryd.api.common import Headers, Request, Response
from registryd.app import Registry
from registryd.auth import Access, Decision
from registryd.body import BodyReader
from registryd.config import Config
from registryd.manifests import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registryd.metrics import Metrics
from registryd.storage import Storage
from registryd.uploads import Uploads

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make(tmp_path: Path, **config: Any) -> Registry:
    root = str(tmp_path / "root")
    storage = Storage(root)
    storage.create()
    settings = Config(root=root, **config)
    return Registry(settings, storage, Uploads(storage, 3600), Metrics())


def call(
    registry: Registry,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Response:
    path, _, query = target.partition("?")
    request = Request(
        method,
        path,
        parse_qs(query, keep_blank_values=True),
        Headers(list((headers or {}).items())),
        BodyReader(io.BytesIO(body), len(body)),
    )
    response = registry.handle(request)
    if response.file is not None:  # read what sendfile would send
        os.lseek(response.file.fd, response.file.offset, os.SEEK_SET)
        response.body = os.read(response.file.fd, response.file.count)
        os.close(response.file.fd)
        response.file = None
    return response


def errors(response: Response) -> list[str]:
    return [e["code"] for e in json.loads(response.body)["errors"]]


def push_blob(registry: Registry, name: str, data: bytes) -> str:
    digest = sha(data)
    response = call(registry, "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data)
    assert response.status == 201, response.body
    return digest


def push_image(registry: Registry, name: str, tag: str, **extra: Any) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": tag}).encode()
    layer = b"layer of " + tag.encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": CONFIG_TYPE,
            "digest": push_blob(registry, name, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": LAYER_TYPE,
                "digest": push_blob(registry, name, layer),
                "size": len(layer),
            }
        ],
        **extra,
    }
    body = json.dumps(manifest).encode()
    response = call(
        registry, "PUT", f"/v2/{name}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 201, response.body
    return sha(body), body


# -- base, blobs ---------------------------------------------------------------------------------


def test_base_and_unknown_routes(tmp_path: Path) -> None:
    registry = make(tmp_path)
    assert call(registry, "GET", "/v2/").status == 200
    missing = call(registry, "GET", "/v3/")
    assert missing.status == 404 and errors(missing) == ["UNSUPPORTED"]
    wrong = call(registry, "PATCH", "/v2/a/manifests/x")
    assert wrong.status == 405 and wrong.headers["Allow"] == "DELETE, GET, HEAD, PUT"


def test_monolithic_push_then_get_head_range(tmp_path: Path) -> None:
    registry = make(tmp_path)
    data = bytes(range(256)) * 4
    digest = push_blob(registry, "a/b", data)
    got = call(registry, "GET", f"/v2/a/b/blobs/{digest}")
    assert got.status == 200 and got.body == data
    assert got.headers["Docker-Content-Digest"] == digest
    head = call(registry, "HEAD", f"/v2/a/b/blobs/{digest}")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(data))
    part = call(registry, "GET", f"/v2/a/b/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    past = call(registry, "GET", f"/v2/a/b/blobs/{digest}", headers={"Range": "bytes=5000-"})
    assert past.status == 416 and past.headers["Content-Range"] == f"bytes */{len(data)}"
    # Content-addressed, but linked per repository.
    other = call(registry, "GET", f"/v2/other/blobs/{digest}")
    assert other.status == 404 and errors(other) == ["BLOB_UNKNOWN"]


def test_wrong_digest_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    registry = make(tmp_path)
    wrong = sha(b"something else")
    response = call(registry, "POST", f"/v2/a/blobs/uploads/?digest={wrong}", b"data")
    assert response.status == 400 and errors(response) == ["DIGEST_INVALID"]
    assert call(registry, "HEAD", f"/v2/a/blobs/{wrong}").status == 404
    assert list(registry.storage.iter_blobs()) == []
    assert os.listdir(registry.storage.uploads) == []


def test_sha512_blobs(tmp_path: Path) -> None:
    registry = make(tmp_path)
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    assert call(registry, "POST", f"/v2/a/blobs/uploads/?digest={digest}", data).status == 201
    assert call(registry, "GET", f"/v2/a/blobs/{digest}").body == data


def test_chunked_upload_in_order_and_out_of_order(tmp_path: Path) -> None:
    registry = make(tmp_path)
    started = call(registry, "POST", "/v2/a/blobs/uploads/")
    assert started.status == 202 and started.headers["Range"] == "0-0"
    location = started.headers["Location"]
    assert location.startswith("/v2/a/blobs/uploads/")
    first = call(registry, "PATCH", location, b"01234", {"Content-Range": "0-4"})
    assert (first.status, first.headers["Range"]) == (202, "0-4")
    again = call(registry, "PATCH", location, b"01234", {"Content-Range": "0-4"})
    assert again.status == 416 and again.headers["Range"] == "0-4"
    assert again.headers["Location"] == location
    gap = call(registry, "PATCH", location, b"x", {"Content-Range": "9-9"})
    assert gap.status == 416
    mismatch = call(registry, "PATCH", location, b"56", {"Content-Range": "5-9"})
    assert mismatch.status == 400 and errors(mismatch) == ["SIZE_INVALID"]
    status = call(registry, "GET", location)
    assert (status.status, status.headers["Range"]) == (204, "0-4")
    streamed = call(registry, "PATCH", location, b"56789")  # no Content-Range: appended
    assert streamed.headers["Range"] == "0-9"
    digest = sha(b"0123456789abc")
    done = call(registry, "PUT", f"{location}?digest={digest}", b"abc")
    assert done.status == 201 and done.headers["Location"] == f"/v2/a/blobs/{digest}"
    assert call(registry, "GET", f"/v2/a/blobs/{digest}").body == b"0123456789abc"
    assert call(registry, "GET", location).status == 404  # the session is gone


def test_upload_session_errors(tmp_path: Path) -> None:
    registry = make(tmp_path)
    location = call(registry, "POST", "/v2/a/blobs/uploads/").headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    assert errors(call(registry, "GET", f"/v2/b/blobs/uploads/{upload_id}")) == [
        "BLOB_UPLOAD_UNKNOWN"
    ]
    assert call(registry, "GET", "/v2/a/blobs/uploads/..%2f..%2fetc").status == 404
    assert errors(call(registry, "PUT", location)) == ["DIGEST_INVALID"]
    assert call(registry, "DELETE", location).status == 204
    assert call(registry, "DELETE", location).status == 404


def test_mounts(tmp_path: Path) -> None:
    registry = make(tmp_path)
    digest = push_blob(registry, "source", b"shared layer")
    mounted = call(registry, "POST", f"/v2/dest/blobs/uploads/?mount={digest}&from=source")
    assert mounted.status == 201 and mounted.headers["Location"] == f"/v2/dest/blobs/{digest}"
    assert call(registry, "GET", f"/v2/dest/blobs/{digest}").body == b"shared layer"
    anonymous = call(registry, "POST", f"/v2/third/blobs/uploads/?mount={digest}")
    assert anonymous.status == 201
    unknown = sha(b"nowhere")
    fallback = call(registry, "POST", f"/v2/dest/blobs/uploads/?mount={unknown}&from=source")
    assert fallback.status == 202 and "/blobs/uploads/" in fallback.headers["Location"]
    wrong_from = call(registry, "POST", f"/v2/dest/blobs/uploads/?mount={digest}&from=empty")
    assert wrong_from.status == 202


def test_blob_delete_unlinks_from_the_repository_only(tmp_path: Path) -> None:
    registry = make(tmp_path)
    digest = push_blob(registry, "a", b"x")
    push_blob(registry, "b", b"x")
    assert call(registry, "DELETE", f"/v2/a/blobs/{digest}").status == 202
    assert call(registry, "GET", f"/v2/a/blobs/{digest}").status == 404
    assert call(registry, "GET", f"/v2/b/blobs/{digest}").status == 200
    assert errors(call(registry, "DELETE", f"/v2/a/blobs/{digest}")) == ["BLOB_UNKNOWN"]


# -- manifests -----------------------------------------------------------------------------------


def test_manifest_round_trip_byte_for_byte(tmp_path: Path) -> None:
    registry = make(tmp_path)
    digest, body = push_image(registry, "app", "v1")
    for reference in ("v1", digest):
        got = call(
            registry, "GET", f"/v2/app/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )
        assert got.status == 200 and got.body == body
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
    head = call(registry, "HEAD", "/v2/app/manifests/v1")
    assert head.headers["Content-Length"] == str(len(body))
    refused = call(registry, "GET", "/v2/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert refused.status == 404 and errors(refused) == ["MANIFEST_UNKNOWN"]
    wildcard = call(registry, "GET", "/v2/app/manifests/v1", headers={"Accept": "*/*"})
    assert wildcard.status == 200


def test_manifest_errors(tmp_path: Path) -> None:
    registry = make(tmp_path, manifest_bytes=2048)
    assert errors(call(registry, "GET", "/v2/none/manifests/x")) == ["NAME_UNKNOWN"]
    push_image(registry, "app", "v1")
    assert errors(call(registry, "GET", "/v2/app/manifests/nope")) == ["MANIFEST_UNKNOWN"]
    bad = call(registry, "PUT", "/v2/app/manifests/x", b"{", {"Content-Type": OCI_MANIFEST})
    assert bad.status == 400 and errors(bad) == ["MANIFEST_INVALID"]
    big = call(registry, "PUT", "/v2/app/manifests/x", b" " * 4096, {"Content-Type": OCI_MANIFEST})
    assert big.status == 413
    missing = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": sha(b"c"), "size": 1},
        "layers": [{"mediaType": LAYER_TYPE, "digest": sha(b"l"), "size": 1}],
    }
    refused = call(
        registry,
        "PUT",
        "/v2/app/manifests/x",
        json.dumps(missing).encode(),
        {"Content-Type": OCI_MANIFEST},
    )
    assert refused.status == 400 and errors(refused) == ["MANIFEST_BLOB_UNKNOWN"] * 2
    body = json.dumps(missing).encode()
    wrong = call(
        registry, "PUT", f"/v2/app/manifests/{sha(b'other')}", body, {"Content-Type": OCI_MANIFEST}
    )
    assert errors(wrong) == ["DIGEST_INVALID"]


def test_index_children_must_exist_and_fallback_picks_the_platform(tmp_path: Path) -> None:
    from registryd.api.manifests import GOARCH

    registry = make(tmp_path)
    child, child_body = push_image(registry, "multi", "child")
    index = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child,
                "size": len(child_body),
                "platform": {"os": "linux", "architecture": GOARCH},
            }
        ],
    }
    body = json.dumps(index).encode()
    assert (
        call(registry, "PUT", "/v2/multi/manifests/all", body, {"Content-Type": DOCKER_LIST}).status
        == 201
    )
    plain = call(registry, "GET", "/v2/multi/manifests/all", headers={"Accept": OCI_MANIFEST})
    assert plain.body == child_body and plain.headers["Docker-Content-Digest"] == child
    orphan = dict(index, manifests=[{"mediaType": OCI_MANIFEST, "digest": sha(b"z"), "size": 1}])
    refused = call(
        registry,
        "PUT",
        "/v2/multi/manifests/bad",
        json.dumps(orphan).encode(),
        {"Content-Type": DOCKER_LIST},
    )
    assert errors(refused) == ["MANIFEST_BLOB_UNKNOWN"]


def test_subject_referrers_and_filter(tmp_path: Path) -> None:
    registry = make(tmp_path)
    subject, subject_body = push_image(registry, "app", "v1")
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_body)}
    signature, _ = push_image(
        registry,
        "app",
        "sig",
        subject=descriptor,
        artifactType="application/x.sig",
        annotations={"by": "me"},
    )
    # A dangling subject is accepted (pushing in either order).
    dangling = {"mediaType": OCI_MANIFEST, "digest": sha(b"later"), "size": 5}
    sbom, _ = push_image(registry, "app", "sbom", subject=dangling)
    response = call(registry, "GET", f"/v2/app/referrers/{subject}")
    assert response.status == 200 and response.headers["Content-Type"] == OCI_INDEX
    index = json.loads(response.body)
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert [d["digest"] for d in index["manifests"]] == [signature]
    assert index["manifests"][0]["artifactType"] == "application/x.sig"
    assert index["manifests"][0]["annotations"] == {"by": "me"}
    later = json.loads(call(registry, "GET", f"/v2/app/referrers/{sha(b'later')}").body)
    assert later["manifests"][0]["artifactType"] == CONFIG_TYPE  # the config's type
    none = call(registry, "GET", f"/v2/app/referrers/{subject}?artifactType=application/x.sbom")
    assert none.headers["OCI-Filters-Applied"] == "artifactType"
    assert json.loads(none.body)["manifests"] == []
    assert call(registry, "GET", f"/v2/app/referrers/{sha(b'x')}").status == 200
    assert call(registry, "GET", "/v2/app/referrers/sha256:zz").status == 400
    assert call(registry, "DELETE", f"/v2/app/manifests/{signature}").status == 202
    assert json.loads(call(registry, "GET", f"/v2/app/referrers/{subject}").body)["manifests"] == []
    assert sbom


def test_oci_subject_header(tmp_path: Path) -> None:
    registry = make(tmp_path)
    config = push_blob(registry, "app", b"{}")
    subject = sha(b"the subject")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": config, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 11},
    }
    response = call(
        registry,
        "PUT",
        "/v2/app/manifests/s",
        json.dumps(manifest).encode(),
        {"Content-Type": OCI_MANIFEST},
    )
    assert response.status == 201 and response.headers["OCI-Subject"] == subject


def test_delete_by_tag_and_by_digest(tmp_path: Path) -> None:
    registry = make(tmp_path)
    digest, _ = push_image(registry, "app", "v1")
    call(
        registry,
        "PUT",
        "/v2/app/manifests/v2",
        call(registry, "GET", "/v2/app/manifests/v1").body,
        {"Content-Type": OCI_MANIFEST},
    )
    assert call(registry, "DELETE", "/v2/app/manifests/v1").status == 202  # the tag only
    assert call(registry, "GET", "/v2/app/manifests/v1").status == 404
    assert call(registry, "GET", f"/v2/app/manifests/{digest}").status == 200
    assert call(registry, "DELETE", f"/v2/app/manifests/{digest}").status == 202
    assert call(registry, "GET", "/v2/app/manifests/v2").status == 404  # its tags went too
    assert json.loads(call(registry, "GET", "/v2/app/tags/list").body)["tags"] == []
    assert errors(call(registry, "DELETE", f"/v2/app/manifests/{digest}")) == ["MANIFEST_UNKNOWN"]


def test_put_by_digest_with_extra_tags(tmp_path: Path) -> None:
    registry = make(tmp_path)
    digest, body = push_image(registry, "app", "v1")
    response = call(
        registry,
        "PUT",
        f"/v2/app/manifests/{digest}?tag=a&tag=b",
        body,
        {"Content-Type": OCI_MANIFEST},
    )
    assert response.status == 201
    assert json.loads(call(registry, "GET", "/v2/app/tags/list").body)["tags"] == ["a", "b", "v1"]


# -- discovery -----------------------------------------------------------------------------------


def test_tags_pagination(tmp_path: Path) -> None:
    registry = make(tmp_path)
    _, body = push_image(registry, "app", "t0")
    for tag in ("B", "a", "t1", "t2", "_x"):
        call(registry, "PUT", f"/v2/app/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})
    everything = json.loads(call(registry, "GET", "/v2/app/tags/list").body)
    assert everything == {"name": "app", "tags": ["B", "_x", "a", "t0", "t1", "t2"]}
    page = call(registry, "GET", "/v2/app/tags/list?n=2")
    assert json.loads(page.body)["tags"] == ["B", "_x"]
    assert page.headers["Link"] == '</v2/app/tags/list?n=2&last=_x>; rel="next"'
    after = call(registry, "GET", "/v2/app/tags/list?n=2&last=_x")
    assert json.loads(after.body)["tags"] == ["a", "t0"]
    tail = call(registry, "GET", "/v2/app/tags/list?n=10&last=t0")
    assert json.loads(tail.body)["tags"] == ["t1", "t2"] and "Link" not in tail.headers
    zero = call(registry, "GET", "/v2/app/tags/list?n=0")
    assert json.loads(zero.body)["tags"] == [] and "Link" not in zero.headers
    assert call(registry, "GET", "/v2/app/tags/list?n=-1").status == 400
    assert errors(call(registry, "GET", "/v2/nothing/tags/list")) == ["NAME_UNKNOWN"]


def test_catalog_and_search(tmp_path: Path) -> None:
    registry = make(tmp_path)
    for name in ("zeta", "library/busybox", "alpha/tools"):
        push_image(registry, name, "latest")
    push_blob(registry, "blobs/only", b"no manifest")
    catalog = json.loads(call(registry, "GET", "/v2/_catalog").body)
    assert catalog == {"repositories": ["alpha/tools", "library/busybox", "zeta"]}
    page = call(registry, "GET", "/v2/_catalog?n=1")
    assert page.headers["Link"] == '</v2/_catalog?n=1&last=alpha%2Ftools>; rel="next"'
    found = json.loads(call(registry, "GET", "/v1/search?q=BUSY").body)
    assert found["num_results"] == 1 and found["query"] == "BUSY"
    assert found["results"] == [
        {
            "name": "library/busybox",
            "description": "",
            "star_count": 0,
            "is_official": False,
            "is_automated": False,
            "is_trusted": False,
        }
    ]
    paged = json.loads(call(registry, "GET", "/v1/search?q=&n=2&page=2").body)
    assert [r["name"] for r in paged["results"]] == ["zeta"] and paged["num_pages"] == 2


def test_search_description_from_annotation(tmp_path: Path) -> None:
    registry = make(tmp_path)
    push_image(
        registry,
        "web",
        "latest",
        annotations={"org.opencontainers.image.description": "a small web server"},
    )
    found = json.loads(call(registry, "GET", "/v1/search?q=small").body)
    assert found["results"][0]["description"] == "a small web server"


def test_metrics(tmp_path: Path) -> None:
    registry = make(tmp_path)
    push_blob(registry, "a", b"12345")
    text = call(registry, "GET", "/metrics").body.decode()
    assert "registryd_blobs 1\n" in text and "registryd_blob_bytes 5\n" in text
    assert "# TYPE registryd_http_requests_total counter" in text


# -- read-only and auth hooks --------------------------------------------------------------------


def test_read_only_refuses_writes_before_auth(tmp_path: Path) -> None:
    registry = make(tmp_path, readonly=True)
    registry.authorizer = Deny()
    for method, path in (
        ("POST", "/v2/a/blobs/uploads/"),
        ("PUT", "/v2/a/manifests/t"),
        ("DELETE", f"/v2/a/blobs/{sha(b'x')}"),
        ("PATCH", "/v2/a/blobs/uploads/x"),
    ):
        response = call(registry, method, path)
        assert response.status == 405 and errors(response) == ["UNSUPPORTED"], path
    assert call(registry, "GET", "/v2/").status == 401  # reads still go through auth


class Deny:
    def authorize(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> Decision:
        return Decision(False, None, 401, "UNAUTHORIZED", "go away", 'Basic realm="r"')

    def may(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> bool:
        return False


class Rules:
    """Alice may pull "public/*" and "alice/*" and push "alice/*"; by the rules anyone may pull
    "public/*", but authorize() (like a bearer token's scope) wants credentials for it."""

    def __init__(self) -> None:
        self.calls: list[list[Access]] = []

    @staticmethod
    def _ok(user: str | None, access: Access) -> bool:
        return user == "alice" and (
            (access.actions == {"pull"} and access.name.startswith(("public/", "alice/")))
            or (access.actions == {"pull", "push"} and access.name.startswith("alice/"))
        )

    def authorize(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> Decision:
        self.calls.append(list(wanted))
        user = headers.get("Authorization")
        if user is None and not wanted:
            return Decision(False, None, 401, "UNAUTHORIZED", "", 'Basic realm="r"')
        for access in wanted:
            if not self._ok(user, access):
                if user is None:
                    return Decision(False, None, 401, "UNAUTHORIZED", "", 'Basic realm="r"')
                return Decision(False, user, 403, "DENIED", f"{user} may not")
        return Decision(True, user)

    def may(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> bool:
        user = headers.get("Authorization")
        return all(
            self._ok(user, a) or (a.actions == {"pull"} and a.name.startswith("public/"))
            for a in wanted
        )


def test_auth_decisions_become_responses(tmp_path: Path) -> None:
    registry = make(tmp_path)
    push_image(registry, "public/app", "v1")
    push_image(registry, "secret/app", "v1")
    rules = Rules()
    registry.authorizer = rules
    base = call(registry, "GET", "/v2/")
    assert base.status == 401 and base.headers["WWW-Authenticate"] == 'Basic realm="r"'
    assert call(registry, "GET", "/v2/", headers={"Authorization": "alice"}).status == 200
    pull = call(registry, "GET", "/v2/public/app/manifests/v1", headers={"Authorization": "alice"})
    assert pull.status == 200
    assert rules.calls[-1] == [Access("repository", "public/app", frozenset({"pull"}))]
    denied = call(registry, "GET", "/v2/secret/app/manifests/v1", headers={"Authorization": "bob"})
    assert denied.status == 403 and errors(denied) == ["DENIED"]
    anonymous = call(registry, "GET", "/v2/public/app/tags/list")
    assert anonymous.status == 401 and "WWW-Authenticate" in anonymous.headers
    catalog = call(registry, "GET", "/v2/_catalog", headers={"Authorization": "alice"})
    assert catalog.status == 403
    assert rules.calls[-1] == [Access("registry", "catalog", frozenset({"*"}))]
    delete = call(
        registry, "DELETE", "/v2/alice/x/manifests/v1", headers={"Authorization": "alice"}
    )
    assert delete.status == 403
    assert rules.calls[-1] == [Access("repository", "alice/x", frozenset({"delete"}))]


def test_search_lists_only_pullable_repositories(tmp_path: Path) -> None:
    registry = make(tmp_path)
    for name in ("public/app", "secret/app", "alice/app"):
        push_image(registry, name, "v1")
    registry.authorizer = Rules()
    found = json.loads(
        call(registry, "GET", "/v1/search?q=app", headers={"Authorization": "alice"}).body
    )
    assert [r["name"] for r in found["results"]] == ["alice/app", "public/app"]
    anonymous = call(registry, "GET", "/v1/search?q=app")
    assert anonymous.status == 200
    assert [r["name"] for r in json.loads(anonymous.body)["results"]] == ["public/app"]


def test_mount_needs_pull_on_from_else_falls_back_to_upload(tmp_path: Path) -> None:
    registry = make(tmp_path)
    secret = push_blob(registry, "secret/app", b"secret layer")
    public = push_blob(registry, "public/app", b"public layer")
    registry.authorizer = Rules()
    alice = {"Authorization": "alice"}
    ok = call(
        registry,
        "POST",
        f"/v2/alice/x/blobs/uploads/?mount={public}&from=public/app",
        headers=alice,
    )
    assert ok.status == 201
    refused = call(
        registry,
        "POST",
        f"/v2/alice/x/blobs/uploads/?mount={secret}&from=secret/app",
        headers=alice,
    )
    assert refused.status == 202  # an ordinary upload session instead
    sneaky = call(registry, "POST", f"/v2/alice/x/blobs/uploads/?mount={secret}", headers=alice)
    assert sneaky.status == 202  # anonymous mount only of what alice could pull
    assert call(registry, "GET", f"/v2/alice/x/blobs/{secret}", headers=alice).status == 404


@pytest.mark.parametrize("tag", ["latest", "v1.0"])
def test_docker_schema2_is_served_with_its_own_type(tmp_path: Path, tag: str) -> None:
    registry = make(tmp_path)
    config = push_blob(registry, "d", b'{"os":"linux"}')
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": config,
            "size": 14,
        },
        "layers": [],
    }
    body = json.dumps(manifest, indent=3).encode()
    assert (
        call(
            registry, "PUT", f"/v2/d/manifests/{tag}", body, {"Content-Type": DOCKER_MANIFEST}
        ).status
        == 201
    )
    got = call(
        registry,
        "GET",
        f"/v2/d/manifests/{tag}",
        headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"},
    )
    assert got.body == body and got.headers["Content-Type"] == DOCKER_MANIFEST
