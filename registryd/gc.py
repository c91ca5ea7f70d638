"""``registryd gc``: mark every blob a repository still needs, sweep the rest.

Mark: in every repository, every manifest revision (tagged or not, as distribution keeps them
unless ``--delete-untagged``) and what it references: config, layers, an index's manifests,
its subject. With ``--delete-untagged`` a repository keeps only what its tags reach (through
indexes), plus the referrers (signatures, SBOMs) of what it keeps; the other revisions go.

Sweep, safe while the server runs: a blob changed (uploaded, pushed again, mounted, HEADed by
a pusher) within the grace period is never removed, so a push whose manifest has not arrived
yet keeps its blobs. The final check runs under the storage's exclusive flock while the
server links blobs and manifests under the shared one: a manifest pushed during the sweep
either is seen by the second mark or finds its blob gone and gets MANIFEST_BLOB_UNKNOWN.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from registryd.manifests import references

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.names import Digest
    from registryd.storage import Storage
    from registryd.uploads import Uploads

GRACE = 600.0  # seconds


@dataclass
class Report:
    dry_run: bool
    marked: int = 0
    blobs: list[tuple[str, int]] = field(default_factory=list)  # (digest, size) swept
    manifests: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)
    uploads: list[str] = field(default_factory=list)
    spared: int = 0  # unreferenced but within the grace period

    @property
    def freed(self) -> int:
        return sum(size for _digest, size in self.blobs)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [f"{verb} manifest {repo}@{digest}" for repo, digest in self.manifests]
        out += [f"{verb} blob {digest} ({size} bytes)" for digest, size in self.blobs]
        out += [f"{verb} upload {upload}" for upload in self.uploads]
        swept = "to remove" if self.dry_run else "removed"
        out.append(
            f"{self.marked} blobs in use, {len(self.blobs)} {swept} ({self.freed} bytes),"
            f" {self.spared} spared (younger than the grace period)"
        )
        return out


def collect(
    storage: Storage,
    uploads: Uploads | None = None,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    grace: float = GRACE,
    now: float | None = None,
) -> Report:
    now = time.time() if now is None else now
    report = Report(dry_run)
    marked, doomed = mark(storage, delete_untagged)
    candidates = [d for d, path in storage.iter_blobs() if d not in marked]
    if dry_run:
        report.marked = len(marked)
        report.manifests = [(repo, str(d)) for repo, d in doomed]
        for digest in candidates:
            size, young = _age(storage, digest, now, grace)
            if young:
                report.spared += 1
            elif size is not None:
                report.blobs.append((str(digest), size))
        return report
    with storage.exclusive_lock():
        marked, doomed = mark(storage, delete_untagged)  # pushes since the first pass
        report.marked = len(marked)
        for repo, digest in doomed:
            _delete_manifest(storage, repo, digest)
            report.manifests.append((repo, str(digest)))
        removed = set()
        for digest in candidates:
            if digest in marked:
                continue
            size, young = _age(storage, digest, now, grace)
            if young:
                report.spared += 1
                continue
            if size is not None and storage.remove_blob(digest):
                removed.add(digest)
                report.blobs.append((str(digest), size))
        if removed:
            for repo in storage.repositories():
                for digest in storage.layers(repo):
                    if digest in removed:
                        storage.unlink_layer(repo, digest)
    if uploads is not None:
        report.uploads = uploads.expire(now)
    return report


def mark(storage: Storage, delete_untagged: bool) -> tuple[set[Digest], list[tuple[str, Digest]]]:
    """(every blob digest in use, the manifests --delete-untagged would remove)."""
    marked: set[Digest] = set()
    doomed: list[tuple[str, Digest]] = []
    for repo in storage.repositories():
        revisions = set(storage.manifests(repo))
        graph = {d: _refs(storage, d) for d in revisions}
        keep = _reachable(storage, repo, revisions, graph) if delete_untagged else revisions
        doomed += [(repo, d) for d in sorted(revisions - keep)]
        for digest in keep:
            marked.add(digest)
            children, subject = graph[digest]
            marked.update(children)
            if subject is not None and subject in revisions:
                marked.add(subject)
    return marked, doomed


def _reachable(
    storage: Storage,
    repo: str,
    revisions: set[Digest],
    graph: dict[Digest, tuple[list[Digest], Digest | None]],
) -> set[Digest]:
    keep: set[Digest] = set()
    todo = [d for tag in storage.tags(repo) if (d := storage.resolve_tag(repo, tag)) is not None]
    while True:
        while todo:
            digest = todo.pop()
            if digest in keep or digest not in revisions:
                continue
            keep.add(digest)
            todo.extend(graph[digest][0])
        # Referrers of what is kept are kept (their subject is their only anchor).
        todo = [d for d in revisions - keep if graph[d][1] in keep]
        if not todo:
            return keep


def _refs(storage: Storage, digest: Digest) -> tuple[list[Digest], Digest | None]:
    try:
        with open(storage.blob_path(digest), "rb") as f:
            return references(f.read())
    except FileNotFoundError:
        return [], None


def _delete_manifest(storage: Storage, repo: str, digest: Digest) -> None:
    _children, subject = _refs(storage, digest)
    storage.unlink_manifest(repo, digest)
    if subject is not None:
        storage.remove_referrer(repo, subject, digest)


def _age(storage: Storage, digest: Digest, now: float, grace: float) -> tuple[int | None, bool]:
    try:
        info = os.stat(storage.blob_path(digest))
    except FileNotFoundError:
        return None, False
    return info.st_size, now - info.st_mtime < grace
