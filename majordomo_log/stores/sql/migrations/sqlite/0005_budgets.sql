-- Budgets (issue 16). One transaction.
-- A call a hard budget refused is logged with status 'blocked' (NULL tokens and cost). The
-- views that count calls count those attempts apart: `calls` is the calls that were sent
-- (every status but 'blocked'), `errors` stays the errors among them, `error_rate` is
-- errors / calls (NULL for a group of blocked attempts only), and a new last column,
-- `blocked`, counts the refused attempts. The other columns keep their names, order and
-- meaning. SQLite has no CREATE OR REPLACE VIEW: each view is dropped and made again.
DROP VIEW IF EXISTS llm_daily_spend;
CREATE VIEW llm_daily_spend AS
SELECT substr(started_at, 1, 10) AS day, model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       SUM(total_tokens) AS total_tokens,
       SUM(total_cost) AS total_cost,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY substr(started_at, 1, 10), model;

DROP VIEW IF EXISTS llm_spend_by_attribution;
CREATE VIEW llm_spend_by_attribution AS
SELECT feature, user_id, api_key_alias,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(total_tokens) AS total_tokens,
       SUM(total_cost) AS total_cost,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY feature, user_id, api_key_alias;

DROP VIEW IF EXISTS llm_error_rate;
CREATE VIEW llm_error_rate AS
SELECT model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       ROUND(1.0 * SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END)
             / NULLIF(SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END), 0), 4) AS error_rate,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY model;

DROP VIEW IF EXISTS llm_call_counts;
CREATE VIEW llm_call_counts AS
SELECT substr(started_at, 1, 10) AS day, model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END) AS retried_calls,
       SUM(retry_count) AS retries,
       SUM(CASE WHEN tool_call_count > 0 THEN 1 ELSE 0 END) AS tool_calling_calls,
       SUM(tool_call_count) AS tool_calls,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY substr(started_at, 1, 10), model;

-- The budgets the wrappers enforce, one row per budget name: what `Budget.definition()`
-- returns, as JSON text. A wrapper built with budgets=[...] records them when it starts
-- (the latest definition of a name wins); `majordomo-log budgets status` reads them.
CREATE TABLE IF NOT EXISTS llm_budgets (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,          -- JSON object
    updated_at  TEXT NOT NULL           -- UTC, ISO 8601 text like started_at
);
