-- What a call did besides its tokens: how many tool calls the model asked for, and how
-- many times the SDK retried the request (NULL: not known, as on every row logged before
-- this migration). One transaction. The view means the same as in the other dialects.
ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS tool_call_count integer;
ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS retry_count integer;

CREATE OR REPLACE VIEW llm_call_counts AS
SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, model,
       COUNT(*) AS calls,
       SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END) AS retried_calls,
       SUM(retry_count) AS retries,
       SUM(CASE WHEN tool_call_count > 0 THEN 1 ELSE 0 END) AS tool_calling_calls,
       SUM(tool_call_count) AS tool_calls
FROM llm_requests
GROUP BY to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), model;
