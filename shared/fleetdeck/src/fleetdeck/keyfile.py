"""Development secrets kept in the data dir: created once, atomically, readable by the owner only."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of ``path``; if it is missing, write ``make()`` there first (mode 0600).

    The content goes to a scratch file that is fsynced and then hard-linked into place, which never
    replaces an existing file: concurrent starters all end up reading the same secret.
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(make())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(scratch, path)
        except FileExistsError:
            pass
        finally:
            scratch.unlink(missing_ok=True)
    return path.read_bytes()


def random_hex_key() -> bytes:
    """32 random bytes, hex-encoded: the format of every generated development key."""
    return secrets.token_hex(32).encode()
