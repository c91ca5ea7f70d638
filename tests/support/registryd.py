"""registryd as a real process for the tests: ``Registryd`` and the ``registryd`` fixture.

``Registryd(workdir)`` runs ``registryd serve --listen 127.0.0.1:0 --root <workdir>/root``
from the venv (cwd and HOME inside ``workdir``, so nothing can land elsewhere unnoticed), waits
for its "listening on" line (the real port) and for ``/v2/`` to answer. ``stop()`` sends
SIGTERM and asserts a clean exit 0 (SIGKILL only if it hangs, which fails the test);
``kill()`` is SIGKILL for crash tests; ``start()`` again reuses the same root.

``request(method, path, body, headers)`` is one plain http.client exchange (a new
connection each time unless ``conn`` is given), returning (status, headers, body).

In a test module: ``from tests.support.registryd import registryd_fixture`` and
``registryd = registryd_fixture`` at module level (a fixture of the name ``registryd``).

For the auth tests: ``write_htpasswd(path, users)`` (bcrypt at the lowest cost, so it is quick)
and ``basic_auth(user, password)``, the Authorization header of HTTP basic auth.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REGISTRYD = str(Path(sys.executable).parent / "registryd")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0


class Registryd:
    def __init__(self, workdir: Path, config: str | None = None, *args: str) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.home = workdir / "home"
        self.log_path = workdir / "registryd.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "registryd.yaml"
        self.config = config
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.scheme = "http"
        self._log_offset = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def argv(self) -> list[str]:
        argv = [REGISTRYD, "serve", "--listen", "127.0.0.1:0", "--root", str(self.root)]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        return argv + self.args

    def start(self) -> Registryd:
        assert self.process is None
        self.home.mkdir(parents=True, exist_ok=True)
        if self.config_path is not None and self.config is not None:
            self.config_path.write_text(self.config)
        env = dict(os.environ, HOME=str(self.home), TMPDIR=str(self.home))
        self._log_offset = len(self.log())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv(), stdout=log, stderr=log, cwd=self.home, env=env
            )
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log()[self._log_offset :].splitlines():
                if "registryd: listening on " in line and line.rsplit(":", 1)[-1].isdigit():
                    self.scheme = line.split("listening on ", 1)[1].split(":", 1)[0]
                    self.port = int(line.rsplit(":", 1)[-1])
            if self.port and self.process.poll() is None:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"registryd exited {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"registryd did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int:
        """SIGTERM, then the exit status (0 expected from a graceful stop)."""
        process = self.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"registryd ignored SIGTERM:\n{self.log()[-3000:]}") from None
        finally:
            self.process = None
            self.port = 0
        return code

    def kill(self) -> None:
        process = self.process
        assert process is not None
        process.kill()
        process.wait()
        self.process = None
        self.port = 0

    def close(self) -> None:
        if self.process is not None:
            code = self.stop()
            assert code == 0, f"registryd exited {code}:\n{self.log()[-3000:]}"

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        own = conn is None
        connection = conn or self.connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            if own:
                connection.close()


def write_htpasswd(path: Path, users: dict[str, str]) -> str:
    """An htpasswd file of ``users`` (name -> password) at ``path``; returns the path."""
    import bcrypt

    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}" for u, p in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def registryd_fixture(tmp_path: Path) -> Iterator[Registryd]:
    server = Registryd(tmp_path / "registryd").start()
    try:
        yield server
    finally:
        server.close()
