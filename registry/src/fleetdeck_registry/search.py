"""Ranked search over servers and tools: words in names, titles, descriptions, owner and tags.

An inverted index built once per catalog: each word points at the documents (a server, or one tool
of a server) holding it, with a weight by field (name > title, tags, owner > description), as numpy
arrays. A query adds ``idf * weight`` of each of its words into one score vector (a word also
matches longer words it begins, at half weight, so ``sched`` finds ``schedule``), masks out the
documents of servers the caller may not use, and takes the best few with a partial sort. A final
per-hit predicate (e.g. the caller's tool policy) is applied only to those candidates.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from fleetdeck_registry.catalog import Catalog

Kind = Literal["server", "tool"]
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_WEIGHTS = {"name": 3.0, "title": 2.0, "tags": 2.0, "owner": 2.0, "description": 1.0}
MAX_QUERY_WORDS = 12
PREFIX_MIN = 3
_PREFIX_FANOUT = 50
_MASKS = 64


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (camelCase and snake_case split)."""
    return [word.lower() for word in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class Hit:
    """One result: a server (``tool`` None) or one of its tools, with its score."""

    kind: Kind
    server: str
    tool: str | None
    score: float


class SearchIndex:
    """The inverted index of one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self._docs: list[tuple[Kind, str, str | None]] = []
        self._server_keys = [entry.key for entry in catalog.entries]
        server_of: list[int] = []
        postings: dict[str, dict[int, float]] = defaultdict(dict)

        def add(doc: int, fields: list[tuple[float, list[str]]]) -> None:
            weights: dict[str, float] = {}
            for weight, found in fields:
                for word in found:
                    current = weights.get(word)
                    weights[word] = weight if current is None else max(current, weight) + 0.1
            for word, weight in weights.items():
                postings[word][doc] = weight

        for number, entry in enumerate(catalog.entries):
            governance = entry.manifest.governance
            shared = [
                (_WEIGHTS["tags"], words(" ".join(governance.tags))),
                (_WEIGHTS["owner"], words(governance.owner_team)),
            ]
            doc = len(self._docs)
            self._docs.append(("server", entry.key, None))
            server_of.append(number)
            add(
                doc,
                [
                    (_WEIGHTS["name"], words(f"{entry.name} {entry.key}")),
                    (_WEIGHTS["title"], words(entry.manifest.title or "")),
                    *shared,
                    (_WEIGHTS["description"], words(entry.manifest.description)),
                ],
            )
            for tool in entry.tools:
                doc = len(self._docs)
                self._docs.append(("tool", entry.key, tool.name))
                server_of.append(number)
                add(
                    doc,
                    [
                        (_WEIGHTS["name"], tool.name.split("_")),
                        (_WEIGHTS["title"], words(tool.title or "")),
                        *shared,
                        (_WEIGHTS["description"], words(tool.description)),
                    ],
                )
        total = max(len(self._docs), 1)
        self._server_of = np.asarray(server_of, dtype=np.int32)
        self._is_tool = np.asarray([kind == "tool" for kind, _, _ in self._docs], dtype=bool)
        self._postings: dict[str, tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]] = {}
        for word, docs in postings.items():
            idf = math.log(1.0 + total / len(docs))
            ids = np.fromiter(docs.keys(), dtype=np.int32, count=len(docs))
            weights = np.fromiter(docs.values(), dtype=np.float32, count=len(docs)) * np.float32(idf)
            self._postings[word] = (ids, weights)
        self._vocabulary = sorted(self._postings)
        self._masks: OrderedDict[frozenset[str], npt.NDArray[np.bool_]] = OrderedDict()

    def _expand(self, word: str) -> list[tuple[str, float]]:
        found = [(word, 1.0)] if word in self._postings else []
        if len(word) >= PREFIX_MIN:
            start = bisect.bisect_left(self._vocabulary, word)
            for other in self._vocabulary[start : start + _PREFIX_FANOUT]:
                if not other.startswith(word):
                    break
                if other != word:
                    found.append((other, 0.5))
        return found

    def _server_mask(self, servers: frozenset[str]) -> npt.NDArray[np.bool_]:
        """Documents whose server is in ``servers`` (cached: callers of one kind share a set)."""
        mask = self._masks.get(servers)
        if mask is None:
            allowed = np.fromiter(
                (key in servers for key in self._server_keys), dtype=bool, count=len(self._server_keys)
            )
            mask = allowed[self._server_of] if len(self._docs) else np.zeros(0, dtype=bool)
            self._masks[servers] = mask
            if len(self._masks) > _MASKS:
                self._masks.popitem(last=False)
        else:
            self._masks.move_to_end(servers)
        return mask

    def search(
        self,
        query: str,
        *,
        kinds: tuple[Kind, ...] = ("server", "tool"),
        limit: int = 20,
        servers: frozenset[str] | None = None,
        allowed: Callable[[Kind, str, str | None], bool] | None = None,
    ) -> list[Hit]:
        """The best ``limit`` documents for ``query`` among ``servers``' that ``allowed`` admits."""
        if not self._docs:
            return []
        scores = np.zeros(len(self._docs), dtype=np.float32)
        for word in dict.fromkeys(words(query)[:MAX_QUERY_WORDS]):
            for token, factor in self._expand(word):
                ids, weights = self._postings[token]
                scores[ids] += weights * np.float32(factor)
        if "server" not in kinds:
            scores[~self._is_tool] = 0
        if "tool" not in kinds:
            scores[self._is_tool] = 0
        if servers is not None:
            scores[~self._server_mask(servers)] = 0
        candidates = np.flatnonzero(scores)
        pool = max(limit * 4, 32)
        while True:
            if len(candidates) > pool:
                best = candidates[np.argpartition(-scores[candidates], pool)[:pool]]
            else:
                best = candidates
            order = best[np.lexsort((best, -scores[best]))]
            results: list[Hit] = []
            for doc in order.tolist():
                kind, server, tool = self._docs[doc]
                if allowed is None or allowed(kind, server, tool):
                    results.append(Hit(kind, server, tool, round(float(scores[doc]), 4)))
                    if len(results) >= limit:
                        return results
            if len(best) == len(candidates):
                return results
            pool *= 4
