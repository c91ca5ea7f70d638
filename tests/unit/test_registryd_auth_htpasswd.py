"""The htpasswd file: bcrypt only, reload on change, equal work for unknown users, add_user."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import bcrypt
import pytest
from click.testing import CliRunner

from registryd.auth import htpasswd as module
from registryd.auth.cli import htpasswd as htpasswd_command
from registryd.auth.errors import AuthConfigError
from registryd.auth.htpasswd import Htpasswd, add_user, parse


def entry(user: str, password: str, prefix: bytes = b"$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4))
    return f"{user}:{(prefix + hashed[4:]).decode()}"


@pytest.fixture
def path(tmp_path: Path) -> str:
    file = tmp_path / "htpasswd"
    file.write_text(
        f"# users\n{entry('alice', 'wonderland')}\n\n{entry('bob', 'builder', b'$2b$')}\n"
    )
    return str(file)


def test_parse_and_check(path: str) -> None:
    users = Htpasswd(path)
    assert users.users() == {"alice", "bob"}
    assert users.check("alice", b"wonderland")
    assert users.check("bob", b"builder")
    assert not users.check("alice", b"builder")
    assert not users.check("nobody", b"wonderland")
    assert not users.check("alice", b"")


@pytest.mark.parametrize(
    ("hashed", "kind"),
    [
        ("$apr1$abc$0123456789abcdefghijkl", "MD5 ($apr1$)"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1 ({SHA})"),
        ("$6$salt$hash", "SHA-512-crypt ($6$)"),
        ("plaintext", "crypt or plain-text"),
        ("$2y$10$tooshort", "malformed bcrypt"),
    ],
)
def test_refuses_non_bcrypt_with_the_line(tmp_path: Path, hashed: str, kind: str) -> None:
    file = tmp_path / "htpasswd"
    file.write_text(f"{entry('alice', 'x')}\nmallory:{hashed}\n")
    with pytest.raises(AuthConfigError) as caught:
        Htpasswd(str(file))
    message = str(caught.value)
    assert f"{file} line 2" in message
    assert "'mallory'" in message
    assert kind in message
    assert "bcrypt" in message


def test_refuses_malformed_lines_and_duplicates() -> None:
    with pytest.raises(AuthConfigError, match="line 1: expected user:hash"):
        parse("no-colon-here\n", "f")
    with pytest.raises(AuthConfigError, match="line 1: expected user:hash"):
        parse(":" + entry("x", "y").split(":", 1)[1], "f")
    with pytest.raises(AuthConfigError, match="line 3: user 'a' already on line 1"):
        parse(f"{entry('a', 'x')}\n\n{entry('a', 'y')}\n", "f")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="No such file"):
        Htpasswd(str(tmp_path / "absent"))


def test_reload_on_change_and_fail_closed(path: str) -> None:
    users = Htpasswd(path)
    assert users.check("alice", b"wonderland")
    add_user(path, "alice", "new-password", cost=4)  # replaced by rename: a new inode
    assert not users.check("alice", b"wonderland")  # the accepted-cache died with the entry
    assert users.check("alice", b"new-password")
    with open(path, "a") as f:  # in place: size and mtime change
        f.write("carol:{SHA}xyz\n")
    assert not users.check("alice", b"new-password")  # invalid file: nobody gets in
    assert users.users() == frozenset()
    file = Path(path)
    file.write_text(file.read_text().replace("carol:{SHA}xyz\n", entry("carol", "c") + "\n"))
    assert users.check("carol", b"c")
    assert users.check("alice", b"new-password")
    os.unlink(path)
    assert not users.check("alice", b"new-password")


def test_unknown_user_costs_a_bcrypt_check_and_failures_are_not_cached(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = Htpasswd(path)
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(module.bcrypt, "checkpw", counting)
    assert not users.check("nobody", b"x")
    assert len(calls) == 1 and calls[0].startswith(b"$2b$04$")  # the dummy, at the file's cost
    assert not users.check("alice", b"wrong")
    assert not users.check("alice", b"wrong")
    assert len(calls) == 3
    assert users.check("alice", b"wonderland")
    assert users.check("alice", b"wonderland")
    assert len(calls) == 4  # the second success came from the cache


def test_long_passwords_are_truncated_like_apache(tmp_path: Path) -> None:
    secret = b"p" * 72
    file = tmp_path / "htpasswd"
    file.write_text("u:" + bcrypt.hashpw(secret, bcrypt.gensalt(4)).decode() + "\n")
    users = Htpasswd(str(file))
    assert users.check("u", secret + b"ignored-tail")
    assert not users.check("u", secret[:-1])


def test_add_user_creates_0600_updates_and_keeps_other_lines(tmp_path: Path) -> None:
    file = str(tmp_path / "sub-htpasswd")
    assert add_user(file, "alice", "one", cost=4) is True
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    with open(file, "a") as f:
        f.write("# a comment\n")
    assert add_user(file, "bob", "two", cost=4) is True
    assert add_user(file, "alice", "three", cost=4) is False
    lines = Path(file).read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["alice", "# a comment", "bob"]
    assert lines[0].startswith("alice:$2b$04$")
    users = Htpasswd(file)
    assert users.check("alice", b"three") and users.check("bob", b"two")
    assert sorted(os.listdir(tmp_path)) == ["sub-htpasswd"]  # no temp file left


@pytest.mark.parametrize(
    ("user", "password", "message"),
    [
        ("a:b", "x", "invalid user name"),
        ("a b", "x", "invalid user name"),
        ("", "x", "invalid user name"),
        ("a", "", "empty password"),
        ("a", "x" * 73, "longer than 72 bytes"),
    ],
)
def test_add_user_refuses(tmp_path: Path, user: str, password: str, message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        add_user(str(tmp_path / "h"), user, password, cost=4)
    assert not (tmp_path / "h").exists()


def test_add_user_refuses_to_rewrite_an_invalid_file(tmp_path: Path) -> None:
    file = tmp_path / "h"
    file.write_text("old:{SHA}abc\n")
    with pytest.raises(AuthConfigError, match="SHA-1"):
        add_user(str(file), "new", "pw", cost=4)
    assert file.read_text() == "old:{SHA}abc\n"


def test_cli_reads_the_password_from_stdin(tmp_path: Path) -> None:
    file = str(tmp_path / "h")
    result = CliRunner().invoke(htpasswd_command, [file, "alice", "--cost", "4"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    assert "added user alice" in result.output
    assert Htpasswd(file).check("alice", b"s3cret")
    result = CliRunner().invoke(htpasswd_command, [file, "alice", "--cost", "4"], input="other\n")
    assert "updated user alice" in result.output
    assert Htpasswd(file).check("alice", b"other")
