-- One row per LLM call; the same logical schema as sqlite/0001 with native types.
-- Token columns are non-overlapping buckets (their sum is total_tokens); costs are
-- exact USD decimals; timestamps are timestamptz (UTC).
CREATE TABLE llm_requests (
    request_id              uuid PRIMARY KEY,
    started_at              timestamptz NOT NULL,
    ended_at                timestamptz NOT NULL,
    latency_ms              double precision NOT NULL,
    time_to_first_token_ms  double precision,
    provider                text NOT NULL,
    model                   text,
    served_model            text,
    operation               text NOT NULL,
    stream                  boolean NOT NULL DEFAULT false,
    status                  text NOT NULL,
    error_type              text,
    error_message           text,
    provider_request_id     text,
    input_tokens            bigint,
    cache_read_tokens       bigint,
    cache_write_5m_tokens   bigint,
    cache_write_1h_tokens   bigint,
    output_tokens           bigint,
    reasoning_tokens        bigint,
    total_tokens            bigint,
    input_cost              numeric(20, 10),
    cache_read_cost         numeric(20, 10),
    cache_write_cost        numeric(20, 10),
    output_cost             numeric(20, 10),
    reasoning_cost          numeric(20, 10),
    total_cost              numeric(20, 10),
    currency                text NOT NULL DEFAULT 'USD',
    cost_status             text NOT NULL,
    price_version           text,
    usage_flags             text,
    api_key_hash            text,
    api_key_alias           text,
    feature                 text,
    workflow                text,
    user_id                 text,
    session_id              text,
    trace_id                text,
    environment             text,
    prompt_version          text,
    tags                    jsonb NOT NULL DEFAULT '{}',
    outcome                 text,
    outcome_at              timestamptz,
    body_ref                text
);

CREATE INDEX llm_requests_started_at ON llm_requests (started_at);
CREATE INDEX llm_requests_model_started_at ON llm_requests (model, started_at);
CREATE INDEX llm_requests_feature_started_at ON llm_requests (feature, started_at);
CREATE INDEX llm_requests_user_started_at ON llm_requests (user_id, started_at);
CREATE INDEX llm_requests_key_alias_started_at ON llm_requests (api_key_alias, started_at);
