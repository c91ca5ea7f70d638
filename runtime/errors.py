"""The one exception tree of pyrun.

Every error a user can see is a ``PyrunError``; the CLI edge (``runtime.cli.edge``) is the only
place that turns one into output and an exit code. Messages that callers match as substrings
(containerd, podman, go-runc) keep runc's words.

::

    PyrunError                        exit 1   anything that went wrong at run time
    ├── UsageError                    exit 2   the command line itself is wrong
    ├── SpecError                     exit 1   config invalid: .problems lists every violation
    ├── StateError                    exit 1   the container's state forbids the verb
    │   ├── ContainerNotFound                  "container <id> does not exist"
    │   ├── ContainerExists                    "container with given ID already exists"
    │   └── ContainerNotRunning                "container not running"
    ├── LinuxError                    exit 1   a syscall failed (operation, path, errno)
    ├── CgroupError                   exit 1   a cgroup could not be made, written or removed
    └── ContainerInitError            exit 1   the container's init process reported a failure

Exit codes of pyrun (runtime-spec leaves them undefined, runtime-spec #1061):

* 0 success; ``run`` (foreground) exits with the container's own exit code, 128+N when the
  container's init was killed by signal N.
* 1 any runtime error above; 2 a usage error (unknown flag, missing argument).
"""

from __future__ import annotations


class PyrunError(Exception):
    """Root of every error pyrun reports to a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PyrunError):
    """The command line is malformed."""

    exit_code = 2


class SpecError(PyrunError):
    """A config (or process spec) is invalid. ``problems`` holds every violation found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{source}: {count} {noun}:"] + [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class StateError(PyrunError):
    """The container's state does not allow the requested verb."""


class ContainerNotFound(StateError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} does not exist")
        self.container_id = container_id


class ContainerExists(StateError):
    def __init__(self, container_id: str) -> None:
        super().__init__("container with given ID already exists")
        self.container_id = container_id


class ContainerNotRunning(StateError):
    def __init__(self) -> None:
        super().__init__("container not running")


class LinuxError(PyrunError):
    """A syscall failed. Carries the errno so callers can branch on it."""

    def __init__(self, operation: str, errno: int, detail: str = "") -> None:
        import os

        self.operation = operation
        self.errno = errno
        reason = os.strerror(errno).lower() if errno else "failed"
        where = f" {detail}" if detail else ""
        super().__init__(f"{operation}{where}: {reason}")


class CgroupError(PyrunError):
    """A cgroup could not be created, configured, joined or removed."""


class ContainerInitError(PyrunError):
    """The container's init process failed while setting the container up."""
