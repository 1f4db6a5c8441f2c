"""A sink's secret (webhook URL or bot token): from an environment variable or an owner-only file.

A secret never comes from the TOML file and is never logged: errors here
name the variable or the file, never what they hold. A file must be
readable by its owner only (mode 0600 or stricter, as ssh insists for its
keys): a wider one is refused. Runs once, when the alerts worker is built.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from posbus.actors.model.errors import PosbusError
from posbus.adapters.alerts.settings import SinkConfig


class SecretError(PosbusError):
    """A sink's secret is missing, empty or exposed; the message names where, never what."""


def read_secret(sink: SinkConfig, environ: Mapping[str, str] | None = None) -> str:
    """The sink's URL (slack, json) or bot token (telegram), stripped of surrounding blanks."""
    variable = sink.url_env or sink.token_env
    if variable is not None:
        value = (os.environ if environ is None else environ).get(variable, "").strip()
        if not value:
            raise SecretError(f"alerts {sink.kind} sink: environment variable {variable} is unset")
        return value
    name = sink.url_file or sink.token_file
    assert name is not None  # SinkConfig requires one source
    return _read_owner_only(Path(name), sink.kind)


def _read_owner_only(path: Path, kind: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SecretError(
            f"alerts {kind} sink: cannot open secret file {path}: {exc.strerror}"
        ) from None
    # Checked on the open descriptor, so the file read is the file checked.
    with os.fdopen(fd, encoding="utf-8") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"alerts {kind} sink: secret file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise SecretError(
                f"alerts {kind} sink: secret file {path} has mode {mode:04o}; "
                f"it must be readable by its owner only (chmod 600 {path})"
            )
        if info.st_uid != os.geteuid():
            raise SecretError(f"alerts {kind} sink: secret file {path} is not owned by this user")
        value = fh.read().strip()
    if not value:
        raise SecretError(f"alerts {kind} sink: secret file {path} is empty")
    return value
