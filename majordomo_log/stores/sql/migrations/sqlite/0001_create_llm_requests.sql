-- One row per LLM call. Token columns are non-overlapping buckets: their sum is
-- total_tokens. Costs are USD; SQLite has no decimal type, so NUMERIC columns
-- hold them as exact-to-15-digits REAL values that plain SUM() adds up.
-- Timestamps are UTC, ISO 8601 text with microseconds ('2026-11-23T17:19:56.123456Z'),
-- which sorts in time order and works with date()/strftime().
CREATE TABLE llm_requests (
    request_id              TEXT PRIMARY KEY,         -- UUIDv7, time-ordered
    started_at              TEXT NOT NULL,
    ended_at                TEXT NOT NULL,
    latency_ms              REAL NOT NULL,
    time_to_first_token_ms  REAL,                     -- streams only
    provider                TEXT NOT NULL,
    model                   TEXT,                     -- as requested by the caller
    served_model            TEXT,                     -- as reported by the provider
    operation               TEXT NOT NULL,            -- chat.completions, responses, messages, embeddings, or a method name
    stream                  INTEGER NOT NULL DEFAULT 0,
    status                  TEXT NOT NULL,            -- ok, error, incomplete
    error_type              TEXT,
    error_message           TEXT,
    provider_request_id     TEXT,
    input_tokens            INTEGER,                  -- input neither read from nor written to a cache
    cache_read_tokens       INTEGER,
    cache_write_5m_tokens   INTEGER,
    cache_write_1h_tokens   INTEGER,
    output_tokens           INTEGER,                  -- output excluding reasoning
    reasoning_tokens        INTEGER,
    total_tokens            INTEGER,
    input_cost              NUMERIC,
    cache_read_cost         NUMERIC,
    cache_write_cost        NUMERIC,
    output_cost             NUMERIC,
    reasoning_cost          NUMERIC,
    total_cost              NUMERIC,                  -- NULL when it cannot be known: see cost_status
    currency                TEXT NOT NULL DEFAULT 'USD',
    cost_status             TEXT NOT NULL,            -- computed, unknown_model, missing_usage, incomplete, invalid_usage, error
    price_version           TEXT,                     -- '<model id>@<effective date>' of the price used
    usage_flags             TEXT,                     -- comma-separated anomalies in the reported usage
    api_key_hash            TEXT,                     -- HMAC-SHA256 of the API key, never the key
    api_key_alias           TEXT,
    feature                 TEXT,
    workflow                TEXT,
    user_id                 TEXT,
    session_id              TEXT,
    trace_id                TEXT,
    environment             TEXT,
    prompt_version          TEXT,
    tags                    TEXT NOT NULL DEFAULT '{}', -- every attribution tag, JSON
    outcome                 TEXT,                     -- accepted, edited, rejected, escalated
    outcome_at              TEXT,
    body_ref                TEXT                      -- where the request/response body is stored; NULL if not stored
);

CREATE INDEX llm_requests_started_at ON llm_requests (started_at);
CREATE INDEX llm_requests_model_started_at ON llm_requests (model, started_at);
CREATE INDEX llm_requests_feature_started_at ON llm_requests (feature, started_at);
CREATE INDEX llm_requests_user_started_at ON llm_requests (user_id, started_at);
CREATE INDEX llm_requests_key_alias_started_at ON llm_requests (api_key_alias, started_at);
