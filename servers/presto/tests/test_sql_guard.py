"""The read-only guard: a corpus of reads that pass and writes, side effects and tricks that are refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetdeck.errors import InvalidInputError
from fleetdeck_presto.guard import GuardPolicy, ObjectRef, ReadOnlyGuard, RefusedStatement

GUARD = ReadOnlyGuard()

READS: list[str] = [
    "SELECT 1",
    "select 1;",
    "SELECT * FROM tpch.tiny.nation",
    "SELECT name FROM tpch.tiny.nation WHERE regionkey = 1 ORDER BY name LIMIT 5",
    "WITH r AS (SELECT * FROM tpch.tiny.region) SELECT r.name, count(*) FROM r GROUP BY 1",
    "SELECT n.name, r.name FROM tpch.tiny.nation n JOIN tpch.tiny.region r ON n.regionkey = r.regionkey",
    "SELECT 1 UNION ALL SELECT 2",
    "SELECT 1 INTERSECT SELECT 1",
    "SELECT 1 EXCEPT SELECT 2",
    "VALUES (1, 'a'), (2, 'b')",
    "(SELECT 1)",
    "SELECT approx_distinct(custkey) FROM tpch.tiny.orders",
    "SELECT date_trunc('month', orderdate), sum(totalprice) FROM tpch.tiny.orders GROUP BY 1",
    "SELECT x FROM UNNEST(ARRAY[1, 2, 3]) AS t(x)",
    "SELECT transform(ARRAY[1, 2], v -> v * 2)",
    "SELECT row_number() OVER (PARTITION BY regionkey ORDER BY name) FROM tpch.tiny.nation",
    "SELECT * FROM TABLE(sequence(start => 1, stop => 3))",
    "SELECT * FROM tpch.information_schema.tables",
    "SELECT * FROM system.information_schema.schemata",
    "SELECT * FROM system.metadata.table_comments",
    "SELECT 'DROP TABLE t; DELETE FROM x' AS harmless_text",
    "SELECT 1 /* ; DROP TABLE t */",
    "-- a comment\nSELECT 1",
    'SELECT "select" FROM "tpch"."tiny"."nation"',
    "SHOW CATALOGS",
    "SHOW SCHEMAS FROM tpch",
    "SHOW TABLES FROM tpch.tiny LIKE 'n%'",
    "SHOW COLUMNS FROM tpch.tiny.nation",
    "SHOW CREATE TABLE tpch.tiny.nation",
    "SHOW CREATE VIEW v",
    "SHOW STATS FOR tpch.tiny.nation",
    "SHOW FUNCTIONS",
    "SHOW SESSION",
    "DESCRIBE tpch.tiny.nation",
    "EXPLAIN SELECT * FROM tpch.tiny.nation",
    "EXPLAIN (TYPE DISTRIBUTED) SELECT 1",
    "EXPLAIN (TYPE IO, FORMAT JSON) SELECT * FROM tpch.tiny.nation",
]

REFUSALS: list[tuple[str, str]] = [
    ("", "empty"),
    ("  ;  ", "empty"),
    ("SELEC 1", "parse-error"),
    ("SELECT FROM WHERE", "parse-error"),
    ("SELECT 1; SELECT 2", "multiple-statements"),
    ("SELECT 1; DROP TABLE t", "multiple-statements"),
    ("SELECT 1 -- x\n; DELETE FROM t", "multiple-statements"),
    ("INSERT INTO t SELECT 1", "not-read-only"),
    ("INSERT INTO t VALUES (1)", "not-read-only"),
    ("UPDATE t SET a = 1", "not-read-only"),
    ("DELETE FROM t", "not-read-only"),
    ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "not-read-only"),
    ("CREATE TABLE t AS SELECT 1", "not-read-only"),
    ("CREATE VIEW v AS SELECT 1", "not-read-only"),
    ("DROP TABLE t", "not-read-only"),
    ("ALTER TABLE t ADD COLUMN c int", "not-read-only"),
    ("ALTER TABLE t EXECUTE optimize", "not-read-only"),
    ("TRUNCATE TABLE t", "not-read-only"),
    ("COMMENT ON TABLE t IS 'x'", "not-read-only"),
    ("GRANT SELECT ON t TO alice", "not-read-only"),
    ("REVOKE SELECT ON t FROM alice", "not-read-only"),
    ("ANALYZE t", "not-read-only"),
    ("REFRESH MATERIALIZED VIEW v", "not-read-only"),
    ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "write"),
    ("SELECT * INTO t2 FROM t", "write"),
    ("SELECT * FROM t FOR UPDATE", "locking"),
    ("EXPLAIN ANALYZE SELECT 1", "explain-analyze"),
    ("explain analyze verbose select 1", "explain-analyze"),
    ("EXPLAIN INSERT INTO t VALUES (1)", "not-read-only"),
    ("EXPLAIN DELETE FROM t", "not-read-only"),
    ("EXPLAIN (TYPE LOGICAL) ANALYZE SELECT 1", "parse-error"),
    ("EXPLAIN (TYPE EVIL) SELECT 1", "explain-form"),
    ("EXPLAIN SHOW TABLES", "explain-form"),
    ("EXPLAIN", "explain-form"),
    ("PREPARE p FROM SELECT 1", "prepared-statement"),
    ("EXECUTE p", "prepared-statement"),
    ("EXECUTE IMMEDIATE 'DELETE FROM t'", "prepared-statement"),
    ("DEALLOCATE PREPARE p", "prepared-statement"),
    ("DESCRIBE INPUT p", "prepared-statement"),
    ("DESCRIBE OUTPUT p", "prepared-statement"),
    ("CALL system.runtime.kill_query(query_id => 'x', message => 'y')", "procedure-call"),
    ("CALL iceberg.system.rollback_to_snapshot('s', 't', 1)", "procedure-call"),
    ("SET SESSION query_max_run_time = '1h'", "session-change"),
    ("RESET SESSION query_max_run_time", "session-change"),
    ("SET ROLE admin", "session-change"),
    ("SET SESSION AUTHORIZATION admin", "session-change"),
    ("SET PATH tpch.tiny", "session-change"),
    ("SET TIME ZONE 'UTC'", "session-change"),
    ("USE tpch.tiny", "session-change"),
    ("START TRANSACTION", "transaction"),
    ("COMMIT", "transaction"),
    ("ROLLBACK", "transaction"),
    ("SELECT * FROM TABLE(postgres.system.query(query => 'DELETE FROM t RETURNING *'))", "table-function"),
    ("SELECT * FROM TABLE(mysql.system.query(query => 'select 1'))", "table-function"),
    ("SELECT * FROM t CROSS JOIN TABLE(pg.system.query(query => 'x'))", "table-function"),
    ("SELECT * FROM system.runtime.queries", "system-catalog"),
    ("SELECT * FROM system.runtime.nodes", "system-catalog"),
    ('SELECT * FROM "SYSTEM"."RUNTIME"."TASKS"', "system-catalog"),
    ("SELECT * FROM tpch.tiny.nation JOIN system.runtime.queries ON true", "system-catalog"),
    ("WITH q AS (SELECT * FROM system.runtime.queries) SELECT * FROM q", "system-catalog"),
    ("SHOW TABLES FROM system.runtime", "system-catalog"),
    ("SHOW STATS FOR (SELECT * FROM t)", "show-form"),
    ("SHOW EVIL", "show-form"),
    ("SHOW", "show-form"),
]


def test_the_corpus_has_at_least_sixty_statements() -> None:
    assert len(READS) + len(REFUSALS) >= 60


@pytest.mark.parametrize("sql", READS)
def test_reads_pass_the_guard(sql: str) -> None:
    statement = GUARD.check(sql)
    assert statement.kind in {"query", "show", "describe", "explain"}


@pytest.mark.parametrize(("sql", "reason"), REFUSALS)
def test_writes_side_effects_and_tricks_are_refused_with_their_reason(sql: str, reason: str) -> None:
    with pytest.raises(RefusedStatement) as refused:
        GUARD.check(sql)
    assert refused.value.reason == reason
    assert f"({reason})" in str(refused.value)
    assert isinstance(refused.value, InvalidInputError)


def test_a_refusal_never_repeats_the_statement_text() -> None:
    with pytest.raises(RefusedStatement) as refused:
        GUARD.check("DELETE FROM secret_table_name WHERE ssn = '123-45-6789'")
    assert "123-45-6789" not in str(refused.value)


def test_overlong_text_is_refused_before_parsing() -> None:
    with pytest.raises(RefusedStatement, match="too-long"):
        GUARD.check("SELECT " + "1 + " * 40_000 + "1")


def test_the_guard_reports_what_a_query_reads() -> None:
    statement = GUARD.check(
        "WITH r AS (SELECT * FROM tpch.tiny.region) SELECT * FROM r JOIN sf1.nation USING (regionkey)"
    )
    assert set(statement.refs) == {ObjectRef("tpch", "tiny", "region"), ObjectRef(None, "sf1", "nation")}


def test_show_targets_are_reported_for_scope_checks() -> None:
    assert GUARD.check("SHOW TABLES FROM tpch.tiny").refs == (ObjectRef("tpch", "tiny"),)
    assert GUARD.check("SHOW SCHEMAS FROM tpch").refs == (ObjectRef("tpch"),)


def test_allowlisted_table_functions_and_system_tables_pass_when_configured() -> None:
    guard = ReadOnlyGuard(
        GuardPolicy(
            table_functions=frozenset({"pg.system.query"}), extra_system=frozenset({"system.runtime.nodes"})
        )
    )
    assert guard.check("SELECT * FROM TABLE(pg.system.query(query => 'select 1'))").kind == "query"
    assert guard.check("SELECT * FROM system.runtime.nodes").kind == "query"
    with pytest.raises(RefusedStatement, match="system-catalog"):
        guard.check("SELECT * FROM system.runtime.queries")


# -- property tests: generated reads are never refused ------------------------------------------

IDENT = st.sampled_from(["nation", "region", "orders", "customer", "t", "sales_2026", "x1"])
COLUMN = st.sampled_from(["name", "regionkey", "comment", "id", "amount", "day"])
SCHEMA = st.sampled_from(["tiny", "sf1", "ads", "finance"])
CATALOG = st.sampled_from(["tpch", "hive", "iceberg", "warehouse", "memory"])
NUMBER = st.integers(min_value=-(10**9), max_value=10**9).map(str)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20).map(
    lambda s: "'" + s.replace("'", "''") + "'"
)


@st.composite
def tables(draw: st.DrawFn) -> str:
    parts = [draw(IDENT)]
    if draw(st.booleans()):
        parts.insert(0, draw(SCHEMA))
        if draw(st.booleans()):
            parts.insert(0, draw(CATALOG))
    return ".".join(parts)


@st.composite
def predicates(draw: st.DrawFn) -> str:
    column = draw(COLUMN)
    form = draw(st.sampled_from(["cmp", "like", "in", "null", "between"]))
    if form == "cmp":
        return f"{column} {draw(st.sampled_from(['=', '<>', '<', '>=']))} {draw(st.one_of(NUMBER, TEXT))}"
    if form == "like":
        return f"{column} LIKE {draw(TEXT)}"
    if form == "in":
        return f"{column} IN ({', '.join(draw(st.lists(NUMBER, min_size=1, max_size=4)))})"
    if form == "null":
        return f"{column} IS {draw(st.sampled_from(['NULL', 'NOT NULL']))}"
    return f"{column} BETWEEN {draw(NUMBER)} AND {draw(NUMBER)}"


@st.composite
def selects(draw: st.DrawFn) -> str:
    columns = draw(st.lists(COLUMN, min_size=1, max_size=4, unique=True))
    aggregate = draw(st.booleans())
    items = [f"count(*) AS n, max({columns[0]}) AS top"] if aggregate else columns
    sql = f"SELECT {', '.join(items)} FROM {draw(tables())}"
    if draw(st.booleans()):
        sql += " WHERE " + " AND ".join(draw(st.lists(predicates(), min_size=1, max_size=3)))
    if aggregate and len(columns) > 1:
        sql = sql.replace("SELECT ", f"SELECT {columns[1]}, ", 1) + f" GROUP BY {columns[1]}"
    if draw(st.booleans()):
        sql += f" ORDER BY 1 {draw(st.sampled_from(['ASC', 'DESC']))}"
    if draw(st.booleans()):
        sql += f" LIMIT {draw(st.integers(min_value=1, max_value=10_000))}"
    return sql


@st.composite
def reads(draw: st.DrawFn) -> str:
    body = draw(selects())
    shape = draw(st.sampled_from(["plain", "cte", "union", "subquery", "explain"]))
    if shape == "cte":
        return f"WITH base AS ({body}) SELECT * FROM base"
    if shape == "union":
        return f"{body} UNION ALL {draw(selects())}"
    if shape == "subquery":
        return f"SELECT * FROM ({body}) AS sub"
    if shape == "explain":
        return f"EXPLAIN {body}"
    return body + draw(st.sampled_from(["", ";", " ;\n"]))


@settings(max_examples=300, deadline=None)
@given(reads())
def test_generated_reads_are_never_refused(sql: str) -> None:
    assert GUARD.check(sql).kind in {"query", "explain"}


@settings(max_examples=100, deadline=None)
@given(
    selects(), st.sampled_from(["DELETE FROM t", "DROP TABLE t", "INSERT INTO t VALUES (1)", "CALL x.y.z()"])
)
def test_a_write_appended_to_any_read_is_refused(sql: str, write: str) -> None:
    with pytest.raises(RefusedStatement):
        GUARD.check(f"{sql}; {write}")
