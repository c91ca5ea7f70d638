"""Helpers for the differential tests: one bundle run by runc and by pyrun, outputs normalised.

A case builds ONE bundle; ``run_both`` runs it with ``runc run <id>`` and then ``pyrun run <id>``
(foreground, through the subreaper shim, separate state roots). Before each run only
``linux.cgroupsPath`` is rewritten, to ``/pyrun/<that runtime's id>``, so each runtime gets its
own cgroup. The normalisers remove only what must differ between two containers: the container
id, mount ids, the numbers of anonymous devices (tmpfs, proc, ...), peer group ids of new
mounts, pids of helper processes and timestamps.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

from tests.conftest import Result, Runtime, base_config

RUNC_SPEC_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def sh_config(script: str) -> dict[str, Any]:
    """``pyrun spec``'s default config (Docker's capabilities) running ``sh -c script``."""
    return base_config(["sh", "-c", script])


def set_cgroups_path(bundle: Path, container_id: str) -> None:
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    config.setdefault("linux", {})["cgroupsPath"] = f"/pyrun/{container_id}"
    path.write_text(json.dumps(config, indent=2))


class Pair(NamedTuple):
    runc: Result
    pyrun: Result
    ids: dict[str, str]  # runtime name -> container id

    def normalised(self, text: str) -> str:
        return normalise_ids(text, list(self.ids.values()))

    @property
    def out(self) -> tuple[str, str]:
        """(runc stdout, pyrun stdout), container ids replaced by ``<id>``."""
        return self.normalised(self.runc.stdout), self.normalised(self.pyrun.stdout)

    @property
    def err(self) -> tuple[str, str]:
        return self.normalised(self.runc.stderr), self.normalised(self.pyrun.stderr)

    @property
    def codes(self) -> tuple[int, int]:
        return self.runc.returncode, self.pyrun.returncode


def run_both(
    runc: Runtime,
    pyrun: Runtime,
    bundle: Path,
    name: str = "c",
    *,
    run_args: tuple[str, ...] = (),
    check: bool = True,
    timeout: float = 30,
) -> Pair:
    """``run [run_args] --bundle B <id>`` with runc, then with pyrun, on the same bundle."""
    results: dict[str, Result] = {}
    ids: dict[str, str] = {}
    for runtime_name, runtime in (("runc", runc), ("pyrun", pyrun)):
        container_id = runtime.id(name)
        ids[runtime_name] = container_id
        set_cgroups_path(bundle, container_id)
        results[runtime_name] = runtime(
            "run", *run_args, "--bundle", str(bundle), container_id, timeout=timeout
        )
    pair = Pair(results["runc"], results["pyrun"], ids)
    if check:
        assert pair.runc.returncode == 0, pair.runc
        assert pair.pyrun.returncode == 0, pair.pyrun
    return pair


def normalise_ids(text: str, ids: list[str]) -> str:
    # Longest first: one id may be a prefix of another.
    for container_id in sorted(ids, key=len, reverse=True):
        text = text.replace(container_id, "<id>")
    return text


_LS_TIME = re.compile(r" [A-Z][a-z]{2} [ \d]\d +(\d\d:\d\d|\d{4}) ")


def strip_ls_times(text: str) -> str:
    """``ls -l`` lines without their modification time (busybox: ``Nov 27 23:23``)."""
    return _LS_TIME.sub(" ", text)


_PS_LINE = re.compile(r"^( *)(\d+)( .*)$")


def normalise_ps(text: str) -> str:
    """busybox ``ps``: keep pid 1, replace the pids of the short-lived helpers."""
    lines = []
    for line in text.splitlines():
        match = _PS_LINE.match(line)
        if match and match.group(2) != "1":
            line = f"<pid>{match.group(3)}"  # the column is right-aligned: drop the padding
        lines.append(line)
    return "\n".join(lines)


class MountEntry(NamedTuple):
    """One /proc/self/mountinfo line without what differs between two containers."""

    parent: str  # the parent's mount point ("-" when it is outside the container's view)
    dev: str  # "254:0" for real devices, "anonN" for anonymous ones (numbered by mount point)
    root: str
    point: str
    options: str
    tags: str  # optional fields: master:N kept (a host peer group), shared:N -> shared
    fstype: str
    source: str
    super_options: str


def parse_mountinfo(text: str, ids: list[str]) -> list[MountEntry]:
    """mountinfo lines in kernel order, normalised; device labels follow the sorted mount
    points so that a different order of sibling mounts does not relabel them."""
    raw = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = normalise_ids(line, ids).split(" ")
        dash = fields.index("-")
        raw.append(
            {
                "id": fields[0],
                "parent": fields[1],
                "dev": fields[2],
                "root": fields[3],
                "point": fields[4],
                "options": fields[5],
                "tags": " ".join(_normalise_tag(tag) for tag in fields[6:dash]),
                "fstype": fields[dash + 1],
                "source": fields[dash + 2],
                "super": fields[dash + 3] if len(fields) > dash + 3 else "",
            }
        )
    points = {entry["id"]: entry["point"] for entry in raw}
    labels: dict[str, str] = {}
    for entry in sorted(raw, key=lambda e: e["point"]):
        if entry["dev"].startswith("0:") and entry["dev"] not in labels:
            labels[entry["dev"]] = f"anon{len(labels) + 1}"
    return [
        MountEntry(
            parent=points.get(entry["parent"], "-"),
            dev=labels.get(entry["dev"], entry["dev"]),
            root=entry["root"],
            point=entry["point"],
            options=entry["options"],
            tags=entry["tags"],
            fstype=entry["fstype"],
            source=entry["source"],
            super_options=entry["super"],
        )
        for entry in raw
    ]


def _normalise_tag(tag: str) -> str:
    # A new mount's peer group is numbered by the kernel at the time; master:N names the
    # host's peer group both containers were made slaves of, and is kept.
    if tag.startswith("shared:"):
        return "shared"
    return tag


def by_mount_point(entries: list[MountEntry]) -> list[MountEntry]:
    """Sorted by mount point; mounts stacked on one point keep their kernel order."""
    return sorted(entries, key=lambda entry: entry.point)


def mounts_at(entries: list[MountEntry], point: str) -> list[MountEntry]:
    return [entry for entry in entries if entry.point == point]


def status_fields(text: str, names: tuple[str, ...]) -> dict[str, str]:
    """Selected ``Name:\\tvalue`` lines of /proc/<pid>/status."""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in names:
            found[key] = value.strip()
    return found


def wait_for_status(
    runtime: Runtime, container_id: str, status: str, timeout: float = 5
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = runtime.state(container_id)
        if state["status"] == status or time.monotonic() > deadline:
            return state
        time.sleep(0.02)
