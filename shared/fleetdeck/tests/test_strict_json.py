"""Strict JSON for tokens and key sets: the fast canonical path and the strict parser agree."""

from __future__ import annotations

import json

import pytest

from fleetdeck.auth.jwks import strict_json

ACCEPTED = [
    b'{"sub":"alice","exp":1796019755,"groups":["ads","finance"],"nested":{"a":[1,2,{"b":null}]}}',
    b'{ "sub" : "alice" , "exp" : 1 }',  # spaces: not canonical, the strict parser decides
    b'{"name":"\\u00e9l\\u00e8ve","emoji":"\\ud83d\\ude00"}',  # escapes
    '{"name":"élève"}'.encode(),
    b'{"big":123456789012345678901234567890,"float":1.5e3}',  # beyond 64 bits: exact int
    b"[]",
]


@pytest.mark.parametrize("document", ACCEPTED)
def test_a_valid_document_parses_exactly_as_the_standard_library_does(document: bytes) -> None:
    value = strict_json(document)
    assert value == json.loads(document)
    assert type(value) is type(json.loads(document))


REFUSED = {
    "duplicate_member": (b'{"sub":"alice","sub":"admin"}', "duplicate JSON member 'sub'"),
    "nested_duplicate": (b'{"realm_access":{"roles":["user"],"roles":["admin"]}}', "duplicate JSON member"),
    "duplicate_with_spaces": (b'{"sub": "alice", "sub": "admin"}', "duplicate JSON member 'sub'"),
    "nan": (b'{"exp":NaN}', "non-standard JSON constant NaN"),
    "infinity": (b'{"exp":Infinity}', "non-standard JSON constant Infinity"),
    "deeply_nested": (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    "not_utf8": (b'{"sub":"\xff"}', "codec can't decode"),
    "truncated": (b'{"sub":', "Expecting value"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_duplicates_non_standard_constants_and_broken_documents_are_refused(name: str) -> None:
    document, why = REFUSED[name]
    with pytest.raises(ValueError, match=why):
        strict_json(document)


def test_a_big_integer_keeps_its_exact_value() -> None:
    assert strict_json(b'{"exp":100000000000000000001}')["exp"] == 100000000000000000001
