-- Cost figures without float noise (issue 18). One transaction.
-- SQLite has no exact decimal type: its NUMERIC cost columns hold REAL values, and SUM()
-- adds them as binary floats, so a sum of exact costs can print as 0.07058700000000001
-- (0.006417 x 11) or 0.15360000000000001 (0.03072 x 5). PostgreSQL and MySQL hold the
-- costs as NUMERIC/DECIMAL(20, 10) and sum them exactly. Each cost column of the views
-- is now ROUND(..., 10): the 10 decimal places the other dialects hold, so the views
-- print the exact figure (a float still, the nearest one to it). llm_most_expensive_calls
-- shows one row's cost, rounded the same way (a cost of more than 10 places is rounded
-- as PostgreSQL and MySQL round it when they store it). A sum of integer costs (all $0)
-- reads 0.0 rather than 0. Column names and order, and the rows, are those of 0005 (and
-- 0002 for llm_cache_savings and llm_most_expensive_calls); llm_error_rate and
-- llm_call_counts show no cost and stay as they are.
DROP VIEW IF EXISTS llm_daily_spend;
CREATE VIEW llm_daily_spend AS
SELECT substr(started_at, 1, 10) AS day, model,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       SUM(total_tokens) AS total_tokens,
       ROUND(SUM(total_cost), 10) AS total_cost,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY substr(started_at, 1, 10), model;

DROP VIEW IF EXISTS llm_spend_by_attribution;
CREATE VIEW llm_spend_by_attribution AS
SELECT feature, user_id, api_key_alias,
       SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,
       SUM(total_tokens) AS total_tokens,
       ROUND(SUM(total_cost), 10) AS total_cost,
       SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked
FROM llm_requests
GROUP BY feature, user_id, api_key_alias;

DROP VIEW IF EXISTS llm_cache_savings;
CREATE VIEW llm_cache_savings AS
SELECT substr(started_at, 1, 10) AS day, model,
       SUM(cache_read_tokens) AS cache_read_tokens,
       SUM(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write_tokens,
       ROUND(SUM(cache_read_cost + cache_write_cost), 10) AS cache_cost,
       ROUND(SUM(cache_savings), 10) AS cache_savings
FROM llm_requests
GROUP BY substr(started_at, 1, 10), model;

DROP VIEW IF EXISTS llm_most_expensive_calls;
CREATE VIEW llm_most_expensive_calls AS
SELECT request_id, started_at, provider, model, operation, feature, user_id, api_key_alias,
       total_tokens, ROUND(total_cost, 10) AS total_cost
FROM llm_requests
WHERE total_cost IS NOT NULL;
