"""The access token of `posbus web`: made at start or read from a 0600 file, compared safely.

The token is a secret: it is printed once, inside the URL to open, and never
logged; errors name the file, never what it holds. A browser that opened the
URL gets a session cookie whose value is derived from the token (an HMAC), so
the token itself never travels again. Pure apart from `read_token_file`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from posbus.actors.model.errors import PosbusError

TOKEN_BYTES = 32
"""Random bytes in a generated token (43 URL-safe characters)."""

_SHAPE = re.compile(r"[A-Za-z0-9_.~-]{20,256}")
_SESSION_LABEL = b"posbus web session"


class TokenError(PosbusError):
    """A token file is missing, exposed or malformed; the message names the file, never its text."""


def new_token() -> str:
    """A fresh random token, URL- and cookie-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_shape(token: str, where: str) -> str:
    """`token` when it is 20-256 characters of A-Z a-z 0-9 _ . ~ -; TokenError naming `where`."""
    if not _SHAPE.fullmatch(token):
        raise TokenError(f"{where}: a token is 20 to 256 characters of letters, digits and _ . ~ -")
    return token


def read_token_file(path: Path) -> str:
    """The token in `path`, which must be a regular file readable by its owner (this user) only."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise TokenError(f"cannot open token file {path}: {exc.strerror}") from None
    # Checked on the open descriptor, so the file read is the file checked.
    with os.fdopen(fd, encoding="utf-8") as fh:
        info = os.fstat(fh.fileno())
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"token file {path} is not a regular file")
        if mode & 0o077:
            raise TokenError(
                f"token file {path} has mode {mode:04o}; it must be readable by its owner "
                f"only (chmod 600 {path})"
            )
        if info.st_uid != os.geteuid():
            raise TokenError(f"token file {path} is not owned by this user")
        text = fh.read().strip()
    return check_shape(text, f"token file {path}")


def session_value(token: str) -> str:
    """The session cookie's value for `token`: an HMAC of it, so the cookie never holds it."""
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def same(presented: str, expected: str) -> bool:
    """Whether two secrets are equal, in time that does not depend on where they differ."""
    return hmac.compare_digest(presented.encode(), expected.encode())
