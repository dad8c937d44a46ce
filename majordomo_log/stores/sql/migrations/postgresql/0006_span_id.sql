-- OpenTelemetry (issue 17). One transaction; the same meaning as sqlite/0006.
-- span_id: the span current when the call was made, as 16 lowercase hex characters: the
--   library's own GenAI client span when OpenTelemetry is configured (its trace is
--   trace_id, filled the same way), or an explicit span_id tag; NULL otherwise.
ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS span_id text;
CREATE INDEX IF NOT EXISTS llm_requests_trace_id ON llm_requests (trace_id);
