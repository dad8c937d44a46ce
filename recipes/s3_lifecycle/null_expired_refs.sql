-- Run daily after the bucket's expiration rule (400 days here): rows keep their
-- metadata and cost, only the pointer to the expired body goes. Same statement on
-- SQLite, PostgreSQL and MySQL (SQLite timestamps are ISO text; the literal compares
-- correctly against all three column types).
UPDATE llm_requests
SET body_ref = NULL
WHERE body_ref IS NOT NULL
  AND started_at < :cutoff;   -- e.g. '2025-10-19T00:00:00.000000Z' = today - 400 days
