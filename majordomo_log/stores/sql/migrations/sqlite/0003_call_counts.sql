-- What a call did besides its tokens: how many tool calls the model asked for, and how
-- many times the SDK retried the request (NULL: not known, as on every row logged before
-- this migration). One transaction. The view counts both per day and model, for the
-- "retried a lot" and "calls many tools" questions.
ALTER TABLE llm_requests ADD COLUMN tool_call_count INTEGER;
ALTER TABLE llm_requests ADD COLUMN retry_count INTEGER;

CREATE VIEW IF NOT EXISTS llm_call_counts AS
SELECT substr(started_at, 1, 10) AS day, model,
       COUNT(*) AS calls,
       SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END) AS retried_calls,
       SUM(retry_count) AS retries,
       SUM(CASE WHEN tool_call_count > 0 THEN 1 ELSE 0 END) AS tool_calling_calls,
       SUM(tool_call_count) AS tool_calls
FROM llm_requests
GROUP BY substr(started_at, 1, 10), model;
