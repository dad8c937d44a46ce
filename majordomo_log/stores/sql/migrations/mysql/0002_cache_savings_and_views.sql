-- Net cache savings per call, and the shipped report views. MySQL commits each
-- statement: the runner treats "already exists" errors as done, so a re-run after a
-- failure halfway completes the rest.
-- The views mean the same in every dialect (tests/stores/test_contract_metadata.py checks it);
-- days are UTC dates as 'YYYY-MM-DD' text.
ALTER TABLE llm_requests ADD COLUMN cache_savings DECIMAL(20, 10);

CREATE OR REPLACE VIEW llm_daily_spend AS
SELECT DATE_FORMAT(started_at, '%Y-%m-%d') AS day, model,
       COUNT(*) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       SUM(total_tokens) AS total_tokens,
       SUM(total_cost) AS total_cost
FROM llm_requests
GROUP BY DATE_FORMAT(started_at, '%Y-%m-%d'), model;

CREATE OR REPLACE VIEW llm_spend_by_attribution AS
SELECT feature, user_id, api_key_alias,
       COUNT(*) AS calls,
       SUM(total_tokens) AS total_tokens,
       SUM(total_cost) AS total_cost
FROM llm_requests
GROUP BY feature, user_id, api_key_alias;

CREATE OR REPLACE VIEW llm_cache_savings AS
SELECT DATE_FORMAT(started_at, '%Y-%m-%d') AS day, model,
       SUM(cache_read_tokens) AS cache_read_tokens,
       SUM(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write_tokens,
       SUM(cache_read_cost + cache_write_cost) AS cache_cost,
       SUM(cache_savings) AS cache_savings
FROM llm_requests
GROUP BY DATE_FORMAT(started_at, '%Y-%m-%d'), model;

CREATE OR REPLACE VIEW llm_error_rate AS
SELECT model,
       COUNT(*) AS calls,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       ROUND(1.0 * SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) / COUNT(*), 4) AS error_rate
FROM llm_requests
GROUP BY model;

CREATE OR REPLACE VIEW llm_most_expensive_calls AS
SELECT request_id, started_at, provider, model, operation, feature, user_id, api_key_alias,
       total_tokens, total_cost
FROM llm_requests
WHERE total_cost IS NOT NULL;
