"""``make demo``: the whole toolchain on the example bundle, leaving nothing behind.

1. ``pyrun run`` the example bundle as it ships (bundles/examples/hello);
2. start registryd on 127.0.0.1 (embedded defaults, a port the kernel picks, storage in a
   temp dir);
3. ``pyrun image commit`` the bundle as an image, ``push`` it to registryd, ``pull`` it back
   into an empty store, ``unpack`` it into a new bundle (an overlay snapshot) and ``run`` it;
4. stop registryd (SIGTERM to the pid we started) and remove the temp dir.

Every command is printed before it runs, with its output, as a user would type it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PYRUN = str(BIN / "pyrun")
REGISTRYD = str(BIN / "registryd")
EXAMPLE = "bundles/examples/hello"
START_TIMEOUT = 30.0


def step(*argv: str) -> None:
    shown = [Path(a).name if a in (PYRUN, REGISTRYD) else a for a in argv]
    print(f"\n$ {shlex.join(shown)}", flush=True)
    subprocess.run(argv, check=True)


def start_registry(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """registryd with its defaults; returns it and the host:port it listens on."""
    argv = [REGISTRYD, "serve", "--listen", "127.0.0.1:0", "--root", str(workdir / "registry")]
    print(f"\n$ registryd serve --listen 127.0.0.1:0 --root {workdir}/registry &", flush=True)
    log = open(workdir / "registryd.log", "wb")  # noqa: SIM115 - the server writes it
    server = subprocess.Popen(argv, stdout=log, stderr=log, cwd=workdir)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(rb"listening on https?://(\S+)", (workdir / "registryd.log").read_bytes())
        if found:
            address = found.group(1).decode()
            print(f"registryd: listening on {address} (pid {server.pid})", flush=True)
            return server, address
        if server.poll() is not None:
            break
        time.sleep(0.05)
    stop_registry(server)
    sys.stdout.write((workdir / "registryd.log").read_text(errors="replace"))
    raise SystemExit("demo: registryd did not start")


def stop_registry(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(f"\nregistryd (pid {server.pid}) stopped: exit {server.returncode}", flush=True)


def release_snapshot(store: str, bundle: Path) -> None:
    """After a failed step: the unpacked bundle's snapshot (normally released by the run)."""
    try:
        config = json.loads((bundle / "config.json").read_text())
        snapshot = config["annotations"]["io.pyrun.image.snapshot"]
    except (OSError, ValueError, KeyError):
        return
    if os.path.ismount(bundle / "rootfs"):
        subprocess.run([PYRUN, "image", "--root", store, "snapshots", "rm", snapshot], check=False)


def main() -> int:
    os.chdir(Path(__file__).resolve().parent.parent)
    step(PYRUN, "run", "--bundle", EXAMPLE, f"demo-{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="pyrun-demo-") as temp:
        workdir = Path(temp)
        server, address = start_registry(workdir)
        bundle = workdir / "hello-from-registry"
        image = f"{address}/demo/hello:1"
        try:
            first, second = str(workdir / "store-1"), str(workdir / "store-2")
            step(PYRUN, "image", "--root", first, "commit", "-m", "make demo", EXAMPLE, image)
            step(PYRUN, "image", "--root", first, "push", "--tls-verify=false", image)
            step(PYRUN, "image", "--root", second, "pull", "--tls-verify=false", "-q", image)
            step(PYRUN, "image", "--root", second, "ls")
            step(PYRUN, "image", "--root", second, "unpack", image, str(bundle))
            # pyrun run deletes the container when it exits, which releases the snapshot.
            step(PYRUN, "run", "--bundle", str(bundle), f"demo-pulled-{os.getpid()}")
        finally:
            release_snapshot(second, bundle)
            stop_registry(server)
    print("\ndemo: done; nothing left behind (temp dir removed, registryd stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
