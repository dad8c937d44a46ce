-- Billing variants (issue 15); the same meaning as sqlite/0004. MySQL commits each
-- statement: the runner treats "already exists" errors (a duplicate column) as done, so a
-- re-run after a failure halfway adds the rest.
-- service_tier: the service tier whose rates priced the call (flex, priority, batch, fast);
--   NULL for the standard tier, or when the call was not priced at a tier's rates.
-- web_search_calls: server-side web searches the provider reported; NULL for none.
-- server_tool_cost: USD for server-side tools (web search), included in total_cost; NULL for
--   none.
ALTER TABLE llm_requests ADD COLUMN service_tier VARCHAR(255);
ALTER TABLE llm_requests ADD COLUMN web_search_calls BIGINT;
ALTER TABLE llm_requests ADD COLUMN server_tool_cost DECIMAL(20, 10);
