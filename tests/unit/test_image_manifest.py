"""Manifests, indexes and platforms (imagetools/manifest.py): parsing, validation errors that
name the field, platform normalisation and selection, the host's platform."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from imagetools import manifest as m
from imagetools.manifest import Index, Manifest, ManifestError, Platform, parse

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def _oci_manifest(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": m.OCI_MANIFEST,
        "config": {"mediaType": m.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [
            {"mediaType": m.OCI_LAYER_GZIP, "digest": D2, "size": 20},
            {"mediaType": m.OCI_LAYER_ZSTD, "digest": D3, "size": 30},
        ],
    }
    document.update(changes)
    return document


def _entry(
    digest: str, arch: str, variant: str | None = None, os_: str = "linux"
) -> dict[str, Any]:
    platform = {"architecture": arch, "os": os_}
    if variant:
        platform["variant"] = variant
    return {"mediaType": m.OCI_MANIFEST, "digest": digest, "size": 5, "platform": platform}


def _index(*entries: dict[str, Any], media_type: str = m.OCI_INDEX) -> Index:
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)}
    parsed = parse(json.dumps(document).encode())
    assert isinstance(parsed, Index)
    return parsed


def test_oci_manifest_parses_into_descriptors() -> None:
    parsed = parse(json.dumps(_oci_manifest()).encode(), m.OCI_MANIFEST)
    assert isinstance(parsed, Manifest)
    assert parsed.config.digest == D1 and parsed.config.size == 10
    assert [layer.media_type for layer in parsed.layers] == [m.OCI_LAYER_GZIP, m.OCI_LAYER_ZSTD]
    assert [b.digest for b in parsed.blobs] == [D1, D2, D3]
    assert parsed.layers[0].short == "2" * 12


def test_docker_schema2_and_list() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": m.DOCKER_MANIFEST,
        "config": {"mediaType": m.DOCKER_CONFIG, "digest": D1, "size": 1},
        "layers": [
            {"mediaType": m.DOCKER_LAYER, "digest": D2, "size": 2},
            {
                "mediaType": m.DOCKER_FOREIGN_LAYER,
                "digest": D3,
                "size": 3,
                "urls": ["https://example.com/layer"],
            },
        ],
    }
    parsed = parse(json.dumps(document).encode(), m.DOCKER_MANIFEST + "; charset=utf-8")
    assert isinstance(parsed, Manifest) and parsed.media_type == m.DOCKER_MANIFEST
    assert m.is_foreign(parsed.layers[1].media_type) and parsed.layers[1].urls
    assert m.compression(m.DOCKER_LAYER) == "gzip" and m.compression(m.OCI_LAYER) is None
    assert m.compression(m.OCI_LAYER_NONDIST_ZSTD) == "zstd"

    listing = _index(_entry(D1, "amd64"), media_type=m.DOCKER_LIST)
    assert listing.media_type == m.DOCKER_LIST
    bad = {"schemaVersion": 2, "mediaType": m.DOCKER_LIST, "manifests": [{**_entry(D1, "amd64")}]}
    del bad["manifests"][0]["platform"]
    with pytest.raises(ManifestError, match=r"manifests\[0\]\.platform: missing"):
        parse(json.dumps(bad).encode())


def test_without_media_type_the_fields_decide() -> None:
    document = _oci_manifest()
    del document["mediaType"]
    assert isinstance(parse(json.dumps(document).encode()), Manifest)
    index = {"schemaVersion": 2, "manifests": [_entry(D1, "amd64")]}
    assert isinstance(parse(json.dumps(index).encode(), "application/json"), Index)


@pytest.mark.parametrize(
    ("document", "media_type", "message"),
    [
        (b"{nope", None, "manifest is not JSON"),
        (b"[]", None, "manifest: must be a JSON object"),
        (
            {"schemaVersion": 1, "name": "x", "fsLayers": []},
            None,
            "Docker schema 1 manifests are not supported",
        ),
        (_oci_manifest(schemaVersion=3), None, r"schemaVersion: 3, expected 2"),
        (_oci_manifest(), m.DOCKER_MANIFEST, "mediaType: the document says .*oci.*, the registry"),
        (_oci_manifest(mediaType="text/html"), None, r"mediaType: 'text/html' is not an image"),
        (_oci_manifest(config=None), None, r"config: must be an object"),
        (_oci_manifest(layers={}), None, r"layers: must be a list"),
        (
            _oci_manifest(layers=[{"mediaType": m.OCI_LAYER, "digest": "sha256:abc", "size": 1}]),
            None,
            r"layers\[0\]\.digest: 'sha256:abc' is not a sha256/sha512 digest",
        ),
        (
            _oci_manifest(layers=[{"mediaType": m.OCI_LAYER, "digest": D2, "size": -1}]),
            None,
            r"layers\[0\]\.size: -1 is not a non-negative integer",
        ),
        (
            _oci_manifest(layers=[{"mediaType": m.OCI_LAYER, "digest": D2, "size": True}]),
            None,
            r"layers\[0\]\.size: True",
        ),
        (
            _oci_manifest(layers=[{"mediaType": "application/zip", "digest": D2, "size": 1}]),
            None,
            r"layers\[0\]\.mediaType: 'application/zip' is not a layer type",
        ),
        (
            _oci_manifest(layers=[{"digest": D2, "size": 1}]),
            None,
            r"layers\[0\]\.mediaType: must be a non-empty string",
        ),
        (
            {
                "schemaVersion": 2,
                "mediaType": m.OCI_INDEX,
                "manifests": [{**_entry(D1, "amd64"), "platform": {"os": "linux"}}],
            },
            None,
            r"manifests\[0\]\.platform\.architecture: must be a non-empty string",
        ),
        (
            {"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": [], "layers": []},
            None,
            "an index has manifests, not layers",
        ),
    ],
)
def test_bad_documents_name_the_field(document: Any, media_type: str | None, message: str) -> None:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(ManifestError, match=message):
        parse(data, media_type)


def test_an_artifact_config_is_not_a_layer_check() -> None:
    document = _oci_manifest(
        config={"mediaType": "application/vnd.example.thing", "digest": D1, "size": 2},
        layers=[{"mediaType": "application/vnd.example.part", "digest": D2, "size": 3}],
    )
    assert isinstance(parse(json.dumps(document).encode()), Manifest)


def test_platform_parse_and_normalise() -> None:
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    assert str(Platform.parse("linux/x86_64")) == "linux/amd64"
    assert str(Platform.parse("linux/arm64")) == "linux/arm64/v8"
    assert str(Platform.parse("linux/aarch64")) == "linux/arm64/v8"
    assert str(Platform.parse("Linux/ARM")) == "linux/arm/v7"
    assert str(Platform.parse("linux/arm/6")) == "linux/arm/v6"
    assert str(Platform.parse("linux/armhf")) == "linux/arm/v7"
    assert str(Platform.parse("linux/i686")) == "linux/386"
    assert Platform.parse("linux/arm64/v8").to_json() == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }
    for bad in ("linux", "linux/", "/amd64", "a/b/c/d", ""):
        with pytest.raises(Exception, match="invalid platform"):
            Platform.parse(bad)


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64/v8"),
        ("armv7l", "linux/arm/v7"),
        ("armv6l", "linux/arm/v6"),
        ("i686", "linux/386"),
        ("ppc64le", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
        ("riscv64", "linux/riscv64"),
    ],
)
def test_host_platform_uses_go_names(
    monkeypatch: pytest.MonkeyPatch, machine: str, expected: str
) -> None:
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, machine))
    monkeypatch.setattr(m.os, "uname", lambda: fake)
    assert str(m.host_platform()) == expected


def test_select_exact_and_fallbacks() -> None:
    index = _index(
        _entry(D1, "amd64"),
        _entry(D2, "arm64", "v8"),
        _entry(D3, "arm", "v6"),
        {**_entry("sha256:" + "4" * 64, "unknown", os_="unknown")},
    )
    assert index.select(Platform.parse("linux/amd64")).digest == D1
    assert index.select(Platform.parse("linux/arm64")).digest == D2
    # arm/v7 runs v6 code when there is no v7; v5 cannot run v6.
    assert index.select(Platform.parse("linux/arm/v7")).digest == D3
    with pytest.raises(ManifestError, match="no manifest for platform linux/arm/v5"):
        index.select(Platform.parse("linux/arm/v5"))
    with pytest.raises(ManifestError) as caught:
        index.select(Platform.parse("windows/amd64"))
    # Attestation entries (unknown/unknown) are not offered.
    assert "it has: linux/amd64, linux/arm/v6, linux/arm64/v8)" in str(caught.value)


def test_select_prefers_the_exact_variant_and_reads_missing_ones_as_defaults() -> None:
    index = _index(_entry(D1, "arm", "v6"), _entry(D2, "arm", "v7"), _entry(D3, "arm64"))
    assert index.select(Platform.parse("linux/arm/v7")).digest == D2
    assert index.select(Platform.parse("linux/arm/v6")).digest == D1
    assert index.select(Platform.parse("linux/arm64/v8")).digest == D3  # "" is v8
    with pytest.raises(ManifestError, match="no manifest for platform linux/amd64"):
        index.select(Platform("linux", "amd64"))


def test_accept_header_lists_indexes_and_manifests() -> None:
    for media_type in (m.OCI_INDEX, m.DOCKER_LIST, m.OCI_MANIFEST, m.DOCKER_MANIFEST):
        assert media_type in m.ACCEPT_HEADER
    assert m.DOCKER_SCHEMA1 not in m.ACCEPT_HEADER
