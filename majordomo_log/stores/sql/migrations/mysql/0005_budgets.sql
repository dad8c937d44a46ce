-- Budgets (issue 16); the same meaning as sqlite/0005. MySQL commits each statement: the
-- views are made with CREATE OR REPLACE and the runner treats "table exists" as done, so
-- a re-run after a failure halfway completes the rest.
-- A call a hard budget refused is logged with status 'blocked' (NULL tokens and cost). The
-- views that count calls count those attempts apart: `calls` is the calls that were sent
-- (every status but 'blocked'), `errors` stays the errors among them, `error_rate` is
-- errors / calls (NULL for a group of blocked attempts only), and a new last column,
-- `blocked`, counts the refused attempts. The other columns keep their names, order and
-- meaning, and the new column comes last: CREATE OR REPLACE VIEW, as in PostgreSQL.
CREATE OR REPLACE VIEW llm_daily_spend AS
SELECT DATE_FORMAT(started_at, '%Y-%m-%d') AS day, model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       SUM(total_tokens) AS total_tokens,
       SUM(total_cost) AS total_cost,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY DATE_FORMAT(started_at, '%Y-%m-%d'), model;

CREATE OR REPLACE VIEW llm_spend_by_attribution AS
SELECT feature, user_id, api_key_alias,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(total_tokens) AS total_tokens,
       SUM(total_cost) AS total_cost,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY feature, user_id, api_key_alias;

CREATE OR REPLACE VIEW llm_error_rate AS
SELECT model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       ROUND(1.0 * SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END)
             / NULLIF(SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END), 0), 4) AS error_rate,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY model;

CREATE OR REPLACE VIEW llm_call_counts AS
SELECT DATE_FORMAT(started_at, '%Y-%m-%d') AS day, model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END) AS retried_calls,
       SUM(retry_count) AS retries,
       SUM(CASE WHEN tool_call_count > 0 THEN 1 ELSE 0 END) AS tool_calling_calls,
       SUM(tool_call_count) AS tool_calls,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY DATE_FORMAT(started_at, '%Y-%m-%d'), model;

-- The budgets the wrappers enforce, one row per budget name: what `Budget.definition()`
-- returns, as JSON. A wrapper built with budgets=[...] records them when it starts
-- (the latest definition of a name wins); `majordomo-log budgets status` reads them.
CREATE TABLE llm_budgets (
    name        VARCHAR(255) NOT NULL PRIMARY KEY,
    definition  JSON NOT NULL,
    updated_at  DATETIME(6) NOT NULL    -- UTC, as started_at
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
