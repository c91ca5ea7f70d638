"""``pyrun state ID``, ``pyrun list`` and ``pyrun ps``."""

from __future__ import annotations

from runtime import jsonfast
from runtime.errors import ContainerNotFound, PyrunError
from runtime.lifecycle.container import Container, Context
from runtime.lifecycle.store import UnreadableState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def state(ctx: Context, container_id: str) -> str:
    container = Container.load(ctx.store, container_id)
    return jsonfast.dumps(container.oci_state(), indent=2)


def list_states(ctx: Context) -> list[dict[str, Any]]:
    store = ctx.store
    states = []
    for container_id in store.ids():
        try:
            document = Container.load(store, container_id).oci_state()
        except (ContainerNotFound, UnreadableState, ValueError):
            continue  # deleted while listing, or an unreadable state file
        # runc's list (unlike its state) names the user owning the state directory.
        document["owner"] = document["owner"] or _owner(store.dir_of(container_id))
        states.append(document)
    return states


def _owner(path: str) -> str:
    import os
    import pwd

    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def list_output(ctx: Context, fmt: str = "table", quiet: bool = False) -> str:
    states = list_states(ctx)
    if quiet:
        return "".join(f"{s['id']}\n" for s in states)
    if fmt == "json":
        return (jsonfast.dumps(states) if states else "null") + "\n"
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for s in states:
        rows.append([s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]])
    return _table(rows)


def _table(rows: list[list[str]]) -> str:
    """Go's tabwriter as runc sets it up (minwidth 12, padding 3); the last column is free."""
    widths = [max(max(len(row[i]) for row in rows) + 3, 12) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines) + "\n"


def ps(
    ctx: Context, container_id: str, fmt: str = "table", ps_args: list[str] | None = None
) -> str:
    container = Container.load(ctx.store, container_id)
    manager = container.cgroup()
    pids = manager.pids() if manager is not None and manager.exists() else []
    if fmt == "json":
        return jsonfast.dumps(pids) + "\n"
    return _ps_table(pids, ps_args or ["-ef"])


def _ps_table(pids: list[int], ps_args: list[str]) -> str:
    """Run ps(1) like runc does and keep the header plus the container's lines."""
    import subprocess

    try:
        output = subprocess.run(["ps", *ps_args], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise PyrunError(f"ps: {err}") from None
    lines = output.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise PyrunError("ps output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"
