"""A small, deterministic demo warehouse (ads, finance, ops) generated into a DuckDB file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb

SCHEMAS: dict[str, str] = {
    "ads": "Advertising: campaigns, daily delivery and conversions.",
    "finance": "Finance: invoices and daily revenue by market.",
    "ops": "Operations: services, deployments and incidents.",
}

_DDL = """
CREATE SCHEMA ads;
CREATE SCHEMA finance;
CREATE SCHEMA ops;

CREATE TABLE ads.campaigns AS
SELECT i AS campaign_id,
       'campaign-' || lpad(i::VARCHAR, 4, '0') AS name,
       (['search', 'display', 'video', 'shopping'])[1 + i % 4] AS channel,
       (['US', 'DE', 'FR', 'JP', 'BR'])[1 + i % 5] AS market,
       DATE '2026-01-01' + (i % 180)::INTEGER AS start_date,
       round(500 + (hash(i) % 9500), 2)::DECIMAL(12, 2) AS daily_budget_usd
FROM range(1, 201) t(i);

CREATE TABLE ads.daily_delivery AS
SELECT c.campaign_id,
       DATE '2026-06-01' + d.i::INTEGER AS day,
       (1000 + hash(c.campaign_id * 1000 + d.i) % 90000)::BIGINT AS impressions,
       (10 + hash(c.campaign_id * 7 + d.i) % 900)::BIGINT AS clicks,
       round((hash(c.campaign_id + d.i * 13) % 500000) / 100.0, 2)::DECIMAL(12, 2) AS spend_usd
FROM ads.campaigns c, range(0, 90) d(i);

CREATE TABLE ads.conversions AS
SELECT row_number() OVER () AS conversion_id,
       1 + (i % 200) AS campaign_id,
       TIMESTAMP '2026-06-01 00:00:00' + to_seconds((hash(i) % 7776000)::BIGINT) AS converted_at,
       round((hash(i * 31) % 20000) / 100.0, 2)::DECIMAL(10, 2) AS value_usd
FROM range(0, 20000) t(i);

CREATE TABLE finance.invoices AS
SELECT i AS invoice_id,
       'ACME-' || (i % 300) AS customer,
       (['US', 'DE', 'FR', 'JP', 'BR'])[1 + i % 5] AS market,
       DATE '2026-01-01' + (i % 300)::INTEGER AS issued_on,
       round(100 + (hash(i) % 5000000) / 100.0, 2)::DECIMAL(12, 2) AS amount_usd,
       (['paid', 'open', 'overdue'])[1 + (hash(i) % 3)::INTEGER] AS status
FROM range(1, 5001) t(i);

CREATE TABLE finance.revenue_daily AS
SELECT DATE '2026-01-01' + d.i::INTEGER AS day,
       m.market,
       round(10000 + (hash(d.i * 5 + m.k) % 9000000) / 100.0, 2)::DECIMAL(14, 2) AS revenue_usd
FROM range(0, 300) d(i),
     (VALUES (0, 'US'), (1, 'DE'), (2, 'FR'), (3, 'JP'), (4, 'BR')) m(k, market);

CREATE TABLE ops.services AS
SELECT i AS service_id,
       (['checkout', 'search', 'ads-serving', 'billing', 'feed', 'auth'])[i] AS name,
       (['payments', 'discovery', 'ads', 'finance', 'discovery', 'platform'])[i] AS owner_team,
       (['tier-1', 'tier-1', 'tier-1', 'tier-2', 'tier-2', 'tier-1'])[i] AS tier
FROM range(1, 7) t(i);

CREATE TABLE ops.deployments AS
SELECT i AS deployment_id,
       1 + (i % 6) AS service_id,
       TIMESTAMP '2026-06-01 00:00:00' + to_seconds((i * 5400)::BIGINT) AS deployed_at,
       (hash(i) % 10 = 0) AS rolled_back
FROM range(1, 1501) t(i);

CREATE TABLE ops.incidents AS
SELECT i AS incident_id,
       1 + (hash(i) % 6)::INTEGER AS service_id,
       (['sev1', 'sev2', 'sev3'])[1 + (hash(i * 3) % 3)::INTEGER] AS severity,
       TIMESTAMP '2026-06-01 00:00:00' + to_seconds((hash(i * 11) % 7776000)::BIGINT) AS opened_at,
       (15 + hash(i * 17) % 600)::INTEGER AS minutes_to_resolve
FROM range(1, 121) t(i);

COMMENT ON TABLE ads.campaigns IS 'One row per advertising campaign.';
COMMENT ON TABLE ads.daily_delivery IS 'Impressions, clicks and spend per campaign per day.';
COMMENT ON TABLE ads.conversions IS 'Attributed conversions with their value.';
COMMENT ON TABLE finance.invoices IS 'Customer invoices and their payment status.';
COMMENT ON TABLE finance.revenue_daily IS 'Recognised revenue per market per day.';
COMMENT ON TABLE ops.services IS 'Production services and their owning team.';
COMMENT ON TABLE ops.deployments IS 'Production deployments; rolled_back marks reverted ones.';
COMMENT ON TABLE ops.incidents IS 'Incidents by service and severity.';
COMMENT ON COLUMN ads.daily_delivery.spend_usd IS 'Media spend in US dollars.';
COMMENT ON COLUMN finance.invoices.status IS 'paid, open or overdue.';
"""


def ensure_demo_warehouse(path: Path) -> Path:
    """Create the demo warehouse at ``path`` unless it exists; concurrent callers are safe."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.stem}-{uuid.uuid4().hex[:8]}.duckdb")
    try:
        with duckdb.connect(str(scratch)) as conn:
            conn.execute(_DDL)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return path
