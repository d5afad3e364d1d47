"""The read-only SQL guard: parse Trino SQL with sqlglot and allow only reads, or refuse naming the reason.

Defense in depth, not the only line: the engine enforces access again because the query runs as the
end user. The guard *allowlists* — one query (SELECT / set operation / VALUES), an allowed SHOW form,
DESCRIBE of a table, or EXPLAIN (never ANALYZE) of a query — and refuses everything else, including
text it cannot parse. Writes hidden in CTEs, ``SELECT … INTO``, row locks, table functions not on
the allowlist and tables of the ``system`` catalog outside the allowed schemas are refused too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.trino import Trino
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from fleetdeck.errors import InvalidInputError

StatementKind = Literal["query", "show", "describe", "explain"]
MAX_SQL_CHARS = 100_000

# sqlglot warns with the statement text when it falls back to an opaque Command; query literals
# must never reach the logs, so those records are dropped (the guard refuses such statements).
_FALLBACK = "Falling back to parsing as a 'Command'"


class _NoStatementText(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _FALLBACK not in str(record.msg)


logging.getLogger("sqlglot").addFilter(_NoStatementText())

_SESSION = {"SET", "RESET", "USE"}
_PREPARED = {"PREPARE", "EXECUTE", "DEALLOCATE"}
_TRANSACTION = {"START", "BEGIN", "COMMIT", "ROLLBACK", "ABORT"}
_SHOW_FORMS = re.compile(
    r"^(CATALOGS|SCHEMAS|TABLES|COLUMNS|FUNCTIONS|SESSION|GRANTS|ROLES|CURRENT\s+ROLES|ROLE\s+GRANTS|STATS\s+FOR"
    r"|CREATE\s+(TABLE|VIEW|MATERIALIZED\s+VIEW|SCHEMA|FUNCTION))\b",
    re.IGNORECASE,
)
_EXPLAIN_OPTIONS = re.compile(
    r"^\(\s*((TYPE\s+(LOGICAL|DISTRIBUTED|VALIDATE|IO)|FORMAT\s+(TEXT|GRAPHVIZ|JSON))\s*,?\s*)+\)",
    re.IGNORECASE,
)
_WRITES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "DML",
        "DDL",
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "TruncateTable",
        "Command",
        "Set",
        "Use",
        "Grant",
        "Revoke",
        "Transaction",
        "Commit",
        "Rollback",
        "Analyze",
        "Refresh",
        "Comment",
        "Copy",
        "Pragma",
        "LoadData",
    )
    if hasattr(exp, name)
)


class RefusedStatement(InvalidInputError):
    """The guard refused the statement; ``reason`` is a stable code, the message explains it."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"refused by the read-only guard ({reason}): {detail}")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A catalog, schema or table a statement reads (``None`` parts come from the session)."""

    catalog: str | None
    schema: str | None = None
    table: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedStatement:
    """A statement the guard allowed: its kind, the text to run and what it reads."""

    kind: StatementKind
    sql: str
    tree: exp.Expression | None = None
    """The parsed query (for ``explain``: the parsed target)."""
    refs: tuple[ObjectRef, ...] = ()
    show: str = ""
    """For SHOW: the text after ``SHOW``."""
    explain_options: str = ""


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What the guard lets through beyond plain reads."""

    table_functions: frozenset[str] = frozenset({"sequence", "exclude_columns"})
    system_schemas: frozenset[str] = frozenset({"information_schema", "jdbc", "metadata"})
    extra_system: frozenset[str] = field(default_factory=frozenset)


class _WordTokenizer(Trino.Tokenizer):
    """Trino's tokenizer without swallowing the rest of SHOW/EXECUTE/… into one opaque string."""

    COMMANDS: ClassVar[set[TokenType]] = set()


def _tokens(sql: str) -> list[Token]:
    try:
        return list(_WordTokenizer().tokenize(sql))
    except TokenError as exc:
        raise RefusedStatement("parse-error", "the text cannot be tokenized as Trino SQL") from exc


def _strip(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _lower(node: exp.Expression | str | None) -> str | None:
    if node is None:
        return None
    return (node if isinstance(node, str) else node.name).lower() or None


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Dot):
        return ".".join(part.name.lower() for part in node.flatten() if part.name)
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.GenerateSeries):
        return "sequence"
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return node.name.lower() or node.key


class ReadOnlyGuard:
    """Checks one statement; :meth:`check` returns it or raises :class:`RefusedStatement`."""

    def __init__(self, policy: GuardPolicy | None = None) -> None:
        self.policy = policy or GuardPolicy()

    def check(self, sql: str) -> CheckedStatement:
        """Allow ``sql`` if it is one read-only statement; raise :class:`RefusedStatement` otherwise."""
        if len(sql) > MAX_SQL_CHARS:
            raise RefusedStatement("too-long", f"statements are limited to {MAX_SQL_CHARS} characters")
        text = _strip(sql)
        tokens = _tokens(text)
        if not tokens:
            raise RefusedStatement("empty", "there is no statement")
        if any(t.token_type == TokenType.SEMICOLON for t in tokens):
            raise RefusedStatement("multiple-statements", "send exactly one statement (no ';' inside)")
        words = " ".join(t.text.upper() for t in tokens[:2]).split()
        first, second = words[0], (words[1] if len(words) > 1 else "")
        if first == "SHOW":
            return self._show(text, tokens)
        if first == "EXPLAIN":
            return self._explain(text, tokens)
        if first in {"DESCRIBE", "DESC"} and second in {"INPUT", "OUTPUT"}:
            raise RefusedStatement("prepared-statement", "DESCRIBE INPUT/OUTPUT works on prepared statements")
        if first == "CALL":
            raise RefusedStatement("procedure-call", "CALL runs a procedure, which can change data")
        if first in _PREPARED:
            raise RefusedStatement("prepared-statement", f"{first} is not allowed; send the query itself")
        if first in _SESSION:
            raise RefusedStatement("session-change", f"{first} changes session state, roles or identity")
        if first in _TRANSACTION:
            raise RefusedStatement("transaction", f"{first} controls transactions; queries need none")
        tree = self._parse(text)
        if isinstance(tree, exp.Describe):
            return self._describe(text, tree)
        if not isinstance(tree, exp.Query | exp.Values):
            raise RefusedStatement("not-read-only", f"{tree.key.upper()} statements are not allowed")
        return CheckedStatement("query", text, tree, self._check_query(tree))

    def _parse(self, text: str) -> exp.Expression:
        try:
            statements = [s for s in sqlglot.parse(text, read="trino") if s is not None]
        except (ParseError, TokenError) as exc:
            raise RefusedStatement("parse-error", "the statement is not valid Trino SQL") from exc
        if len(statements) != 1:
            raise RefusedStatement("multiple-statements", "send exactly one statement")
        tree = statements[0]
        if isinstance(tree, exp.Command):
            raise RefusedStatement("not-read-only", f"{str(tree.this).upper()} statements are not allowed")
        if not isinstance(tree, exp.Expression):
            raise RefusedStatement("parse-error", "the statement is not valid Trino SQL")
        return tree

    def _check_query(self, tree: exp.Expression) -> tuple[ObjectRef, ...]:
        ctes = {_lower(cte.alias_or_name) for cte in tree.find_all(exp.CTE)}
        refs: list[ObjectRef] = []
        for node in tree.walk():
            if isinstance(node, _WRITES):
                raise RefusedStatement("write", f"the query contains a {node.key.upper()} statement")
            if isinstance(node, exp.Into):
                raise RefusedStatement("write", "SELECT … INTO creates a table")
            if isinstance(node, exp.Lock):
                raise RefusedStatement("locking", "row locks (FOR UPDATE/SHARE) are not reads")
            if isinstance(node, exp.Table):
                ref = self._table(node, ctes)
                if ref is not None:
                    refs.append(ref)
        return tuple(dict.fromkeys(refs))

    def _table(self, node: exp.Table, ctes: set[str | None]) -> ObjectRef | None:
        target = node.this
        if not isinstance(target, exp.Identifier):
            if (
                isinstance(target, exp.Anonymous)
                and str(target.this).upper() == "TABLE"
                and target.expressions
            ):
                target = target.expressions[0]
            name = _function_name(target)
            if name not in self.policy.table_functions:
                raise RefusedStatement(
                    "table-function", f"table function {name} is not on the allowlist (it may run raw SQL)"
                )
            return None
        ref = ObjectRef(_lower(node.args.get("catalog")), _lower(node.args.get("db")), _lower(node.name))
        if ref.catalog is None and ref.schema is None and ref.table in ctes:
            return None
        self._check_system(ref)
        return ref

    def _check_system(self, ref: ObjectRef) -> None:
        if ref.catalog != "system":
            return
        dotted = ".".join(p for p in (ref.catalog, ref.schema, ref.table) if p)
        if ref.schema in self.policy.system_schemas or dotted in self.policy.extra_system:
            return
        raise RefusedStatement(
            "system-catalog",
            f"{dotted} is in the system catalog; allowed there: "
            + ", ".join(sorted(f"system.{s}" for s in self.policy.system_schemas | self.policy.extra_system)),
        )

    def _describe(self, text: str, tree: exp.Describe) -> CheckedStatement:
        target = tree.this
        if not isinstance(target, exp.Table) or tree.args.get("kind"):
            raise RefusedStatement("describe-form", "only DESCRIBE <table> is allowed")
        ref = self._table(target, set())
        return CheckedStatement("describe", text, tree, (ref,) if ref else ())

    def _show(self, text: str, tokens: list[Token]) -> CheckedStatement:
        tail = text[tokens[1].start :] if len(tokens) > 1 else ""
        if not _SHOW_FORMS.match(tail):
            raise RefusedStatement(
                "show-form", "allowed: SHOW CATALOGS/SCHEMAS/TABLES/COLUMNS/CREATE/STATS/…"
            )
        if any(t.token_type in (TokenType.L_PAREN, TokenType.R_PAREN) for t in tokens):
            raise RefusedStatement(
                "show-form", "SHOW with a subquery is not allowed; query the table instead"
            )
        refs = tuple(self._show_refs(tokens[1:]))
        for ref in refs:
            self._check_system(ref)
        return CheckedStatement("show", text, None, refs, show=tail)

    @staticmethod
    def _show_refs(tokens: list[Token]) -> list[ObjectRef]:
        """The qualified name after FROM/IN/FOR/TABLE/VIEW/SCHEMA, as a catalog, schema or table."""
        form = tokens[0].text.upper() if tokens else ""
        for i, token in enumerate(tokens):
            keyword = token.text.upper()
            if keyword not in {"FROM", "IN", "FOR", "TABLE", "VIEW", "SCHEMA"}:
                continue
            parts: list[str] = []
            j = i + 1
            while j < len(tokens) and tokens[j].token_type in (TokenType.VAR, TokenType.IDENTIFIER):
                parts.append(tokens[j].text.lower())
                if j + 1 < len(tokens) and tokens[j + 1].token_type == TokenType.DOT:
                    j += 2
                else:
                    break
            if not parts:
                continue
            size = 1 if form == "SCHEMAS" else 2 if form == "TABLES" or keyword == "SCHEMA" else 3
            padded: list[str | None] = [None] * (size - len(parts[-size:])) + list(parts[-size:])
            return [ObjectRef(*padded)]
        return []

    def _explain(self, text: str, tokens: list[Token]) -> CheckedStatement:
        rest = text[tokens[1].start :] if len(tokens) > 1 else ""
        if re.match(r"^ANALYZE\b", rest, re.IGNORECASE):
            raise RefusedStatement("explain-analyze", "EXPLAIN ANALYZE executes the statement; use EXPLAIN")
        options = ""
        if rest.startswith("("):
            match = _EXPLAIN_OPTIONS.match(rest)
            if match is None:
                raise RefusedStatement(
                    "explain-form", "EXPLAIN options: TYPE LOGICAL|DISTRIBUTED|VALIDATE|IO, FORMAT"
                )
            options, rest = match.group(0), rest[match.end() :].strip()
        if not rest:
            raise RefusedStatement("explain-form", "EXPLAIN needs a query")
        inner = self.check(rest)
        if inner.kind != "query":
            raise RefusedStatement("explain-form", "only queries can be explained")
        return CheckedStatement("explain", text, inner.tree, inner.refs, explain_options=options)
