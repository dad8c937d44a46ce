-- OpenTelemetry (issue 17); the same meaning as sqlite/0006. MySQL commits each
-- statement: the runner treats "already exists" errors (a duplicate column or index) as
-- done, so a re-run after a failure halfway adds the rest.
-- span_id: the span current when the call was made, as 16 lowercase hex characters: the
--   library's own GenAI client span when OpenTelemetry is configured (its trace is
--   trace_id, filled the same way), or an explicit span_id tag; NULL otherwise.
ALTER TABLE llm_requests ADD COLUMN span_id VARCHAR(255);
CREATE INDEX llm_requests_trace_id ON llm_requests (trace_id);
