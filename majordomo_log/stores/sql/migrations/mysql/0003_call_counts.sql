-- What a call did besides its tokens: how many tool calls the model asked for, and how
-- many times the SDK retried the request (NULL: not known, as on every row logged before
-- this migration). MySQL commits each statement: the runner treats "duplicate column"
-- as done, so a re-run after a failure halfway completes the rest.
ALTER TABLE llm_requests ADD COLUMN tool_call_count INT;
ALTER TABLE llm_requests ADD COLUMN retry_count INT;

CREATE OR REPLACE VIEW llm_call_counts AS
SELECT DATE_FORMAT(started_at, '%Y-%m-%d') AS day, model,
       COUNT(*) AS calls,
       SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END) AS retried_calls,
       SUM(retry_count) AS retries,
       SUM(CASE WHEN tool_call_count > 0 THEN 1 ELSE 0 END) AS tool_calling_calls,
       SUM(tool_call_count) AS tool_calls
FROM llm_requests
GROUP BY DATE_FORMAT(started_at, '%Y-%m-%d'), model;
