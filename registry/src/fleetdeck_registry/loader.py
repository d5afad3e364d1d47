"""Load ``<manifests>/*/server.json`` and ``reviews.yaml`` into a :class:`Catalog`, all or nothing.

Rules (every violation is a problem naming ``path:line:column``; one problem fails the whole load,
so the caller keeps serving its last good catalog):

- only the manifest folder is read: the folder is resolved once, entries that are symbolic links
  (server folders or files) are refused, so nothing read can lie outside it; folder names are
  plain (``[a-z][a-z0-9-]*``), so no name can climb out (``..``);
- files are bounded (JSON 4 MiB, YAML 256 KiB) and parsed strictly (:mod:`fleetdeck.manifest.strict_yaml`);
- the manifest and the review records must pass their schemas; records name their own folder;
- server names (official and folder) and tool names within a server must not collide by case,
  compatibility form or look-alike letters (:mod:`fleetdeck_registry.names`).

Unchanged files (same size, modification time and inode) are not parsed again on a reload.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from fleetdeck.errors import ManifestError
from fleetdeck.manifest.model import Manifest
from fleetdeck.manifest.reviews import REVIEWS_FILE, Reviews
from fleetdeck_registry.catalog import Catalog, ServerEntry, make_entry
from fleetdeck_registry.names import find_collisions
from fleetdeck_registry.parsing import read_manifest, read_reviews

T = TypeVar("T")
MANIFEST_FILE = "server.json"
FOLDER = re.compile(r"[a-z][a-z0-9-]{0,63}")
Stamp = tuple[int, int, int]
"""(size, mtime_ns, inode) of a file: unchanged stamp, unchanged content."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """A new catalog, or the problems that prevented one."""

    catalog: Catalog | None
    problems: tuple[str, ...]
    fingerprint: tuple[tuple[str, Stamp], ...]


class _Parsed:
    """Parsed files by path and stamp, so a reload re-reads only what changed."""

    def __init__(self) -> None:
        self.manifests: dict[Path, tuple[Stamp, Manifest]] = {}
        self.reviews: dict[Path, tuple[Stamp, Reviews]] = {}


def _stamp(stat: os.stat_result) -> Stamp:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def fingerprint(root: Path) -> tuple[tuple[str, Stamp], ...]:
    """What the folder holds right now (names and stamps), cheap enough to poll."""
    found: list[tuple[str, Stamp]] = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                found.append((entry.name, _stamp(entry.stat(follow_symlinks=False))))
                if entry.is_dir(follow_symlinks=False):
                    for file in (MANIFEST_FILE, REVIEWS_FILE):
                        try:
                            stat = os.stat(os.path.join(entry.path, file), follow_symlinks=False)
                        except OSError:
                            continue
                        found.append((f"{entry.name}/{file}", _stamp(stat)))
    except OSError:
        return ()
    return tuple(sorted(found))


class Loader:
    """Loads one manifest folder; keeps parsed files between loads."""

    def __init__(self, root: Path, *, max_servers: int = 10_000) -> None:
        self.root = root
        self.max_servers = max_servers
        self._parsed = _Parsed()

    def load(self, generation: int, now: dt.datetime) -> LoadResult:
        """Read the folder; a catalog only if every file is sound."""
        problems: list[str] = []
        before = fingerprint(self.root)
        try:
            root = self.root.resolve(strict=True)
        except OSError as exc:
            return LoadResult(None, (f"{self.root}: manifest folder unreadable: {exc.strerror}",), before)
        if not root.is_dir():
            return LoadResult(None, (f"{self.root}: not a folder",), before)
        folders = self._folders(root, problems)
        entries = [entry for key in folders if (entry := self._entry(root, key, now, problems))]
        problems += _collisions(entries)
        self._forget(root, folders)
        if problems:
            return LoadResult(None, tuple(problems), before)
        catalog = Catalog.build(entries, generation, now, now.date())
        return LoadResult(catalog, (), before)

    def _folders(self, root: Path, problems: list[str]) -> list[str]:
        keys: list[str] = []
        with os.scandir(root) as found:
            for entry in sorted(found, key=lambda item: item.name):
                if entry.name.startswith("."):
                    continue
                where = root / entry.name
                if entry.is_symlink():
                    problems.append(f"{where}:1:1: is a symbolic link; the registry reads only real folders")
                elif not entry.is_dir(follow_symlinks=False):
                    continue  # manifest.schema.json, a README: not servers
                elif not FOLDER.fullmatch(entry.name):
                    problems.append(f"{where}:1:1: folder name must match {FOLDER.pattern}")
                else:
                    keys.append(entry.name)
        if len(keys) > self.max_servers:
            problems.append(f"{root}: {len(keys)} server folders; the limit is {self.max_servers}")
            return []
        return keys

    def _forget(self, root: Path, keys: list[str]) -> None:
        """Drop parsed files of folders that are gone."""
        present = {root / key for key in keys}
        for cache in (self._parsed.manifests, self._parsed.reviews):
            for path in [path for path in cache if path.parent not in present]:
                del cache[path]

    def _entry(self, root: Path, key: str, now: dt.datetime, problems: list[str]) -> ServerEntry | None:
        folder = root / key
        manifest_path, reviews_path = folder / MANIFEST_FILE, folder / REVIEWS_FILE
        for path in (manifest_path, reviews_path):  # the folder is real (checked): only links lead out
            if os.path.islink(path):
                problems.append(
                    f"{path}:1:1: is a symbolic link; manifests and reviews must be regular files"
                )
                return None
        if not os.path.lexists(manifest_path):
            problems.append(f"{manifest_path}:1:1: missing (a folder without a server.json)")
            return None
        try:
            manifest, modified = self._cached(manifest_path, self._parsed.manifests, read_manifest)
            reviews = None
            if os.path.lexists(reviews_path):
                reviews, _ = self._cached(reviews_path, self._parsed.reviews, read_reviews)
                if reviews.server != key:
                    problems.append(f"{reviews_path}:1:1: records are for {reviews.server!r}, not {key!r}")
                    return None
            return make_entry(key, manifest, reviews, now.date(), modified)
        except ManifestError as exc:
            problems.append(str(exc))
        except ValidationError as exc:  # access or tool policy the auth layer cannot read
            first = exc.errors(include_url=False)[0]
            problems.append(f"{manifest_path}:1:1: policy: {first['msg']}")
        return None

    def _cached(
        self, path: Path, cache: dict[Path, tuple[Stamp, T]], load: Callable[[Path], T]
    ) -> tuple[T, dt.datetime]:
        try:
            stat = os.stat(path, follow_symlinks=False)
        except OSError as exc:
            raise ManifestError(f"{path}:1:1: cannot read: {exc.strerror}") from exc
        stamp = _stamp(stat)
        modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
        hit = cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1], modified
        value = load(path)
        cache[path] = (stamp, value)
        return value, modified


def _collisions(entries: list[ServerEntry]) -> list[str]:
    problems: list[str] = []
    for kind, names in (
        ("server name", [entry.name for entry in entries]),
        ("server folder", [entry.key for entry in entries]),
    ):
        for first, later in find_collisions(names):
            problems.append(f"duplicate {kind}: {later!r} looks like {first!r}")
    for entry in entries:
        for first, later in find_collisions([tool.name for tool in entry.tools]):
            problems.append(
                f"{entry.key}/{MANIFEST_FILE}:1:1: duplicate tool name: {later!r} looks like {first!r}"
            )
    return problems
