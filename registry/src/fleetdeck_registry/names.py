"""Name collisions that a person would not see: case, compatibility forms and look-alike letters.

Two names collide when their *skeletons* are equal: NFKC, then case folding, then every character
mapped through a table of confusable look-alikes (Cyrillic and Greek letters that render like Latin
ones, digits that pass for letters), with invisible format characters removed and ``-``/``.`` read
as ``_``. It is a compact subset of Unicode TR39's confusables: enough for the look-alikes an
attacker reaches for in tool and server names.
"""

from __future__ import annotations

import unicodedata

_CONFUSABLES = {
    # Cyrillic, Greek and Latin letters that render like ASCII ones, digits that pass for letters
    "\u0430": "a",
    "\u0432": "b",
    "\u0441": "c",
    "\u0501": "d",
    "\u0435": "e",
    "\u04bb": "h",
    "\u0456": "i",
    "\u0458": "j",
    "\u043a": "k",
    "\u04cf": "l",
    "\u043c": "m",
    "\u043d": "h",
    "\u043e": "o",
    "\u0440": "p",
    "\u051b": "q",
    "\u0455": "s",
    "\u0442": "t",
    "\u0443": "y",
    "\u0445": "x",
    "\u051d": "w",
    "\u04af": "y",
    "\u0475": "v",
    "\u0261": "g",
    "\u03b1": "a",
    "\u03b2": "b",
    "\u03b5": "e",
    "\u03b7": "n",
    "\u03b9": "i",
    "\u03ba": "k",
    "\u03bd": "v",
    "\u03bf": "o",
    "\u03c1": "p",
    "\u03c4": "t",
    "\u03c5": "u",
    "\u03c7": "x",
    "\u03c9": "w",
    "\u03f2": "c",
    "0": "o",
    "1": "l",
    "|": "l",
    "\u0131": "i",
    "\u2113": "l",
    "\u029f": "l",
    "-": "_",
    ".": "_",
}


_TABLE = str.maketrans(_CONFUSABLES)


def skeleton(name: str) -> str:
    """The form two names share when a reader could take one for the other."""
    if name.isascii():
        folded = name.lower()
    else:
        normal = unicodedata.normalize("NFKC", name).casefold()
        folded = "".join(char for char in normal if unicodedata.category(char) not in ("Cf", "Mn"))
    return folded.translate(_TABLE).replace("rn", "m").replace("vv", "w")


def find_collisions(names: list[str]) -> list[tuple[str, str]]:
    """Pairs ``(first, later)`` of distinct names in ``names`` whose skeletons are equal."""
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for name in names:
        key = skeleton(name)
        if key in seen:
            pairs.append((seen[key], name))
        else:
            seen[key] = name
    return pairs
