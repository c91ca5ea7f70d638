"""A process that works on an image store one step at a time, for concurrency tests.

The test writes one JSON request per line to its stdin and reads one JSON reply per line:
``{"op": "lease"}`` / ``{"op": "unlease"}``, ``{"op": "write_blob", "data": "..."}``,
``{"op": "ingest", "digest", "size", "data"}`` (begins an ingest and writes part of it),
``{"op": "ingest_write", "data"}``, ``{"op": "ingest_commit"}``, ``{"op": "set_ref", "name",
"descriptor"}``, ``{"op": "gc"}``, ``{"op": "exit"}``. A step that blocks (gc waiting for a
lease, an ingest waiting for another's lock) answers only when it is done, which is what the
tests look for. Replies: ``{"ok": value}`` or ``{"error": "ClassName: message"}``.

    python tests/support/store_actor.py ROOT
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imagetools.store import Ingest, Store


def main() -> None:
    store = Store(sys.argv[1])
    leases = ExitStack()
    ingest: Ingest | None = None
    print(json.dumps({"ok": "ready"}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            result: Any = None
            if op == "lease":
                leases.enter_context(store.lease())
            elif op == "unlease":
                leases.close()
                leases = ExitStack()
            elif op == "write_blob":
                result = store.write_blob(request["data"].encode())
            elif op == "ingest":
                ingest = store.ingest(request["digest"], request["size"])
                ingest.restart()
                ingest.write(request["data"].encode())
                result = {"complete": ingest.complete, "offset": ingest.offset}
            elif op == "ingest_write":
                assert ingest is not None
                ingest.write(request["data"].encode())
                result = ingest.offset
            elif op == "ingest_commit":
                assert ingest is not None
                result = ingest.commit()
                ingest = None
            elif op == "set_ref":
                store.set_ref(request["name"], request["descriptor"])
            elif op == "gc":
                result = store.gc()
            elif op == "exit":
                print(json.dumps({"ok": None}), flush=True)
                return
            else:
                raise ValueError(f"unknown op {op}")
            reply: dict[str, Any] = {"ok": result}
        except Exception as err:
            reply = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
