-- Billing variants (issue 15). One transaction; the same meaning as sqlite/0004.
-- service_tier: the service tier whose rates priced the call (flex, priority, batch, fast);
--   NULL for the standard tier, or when the call was not priced at a tier's rates.
-- web_search_calls: server-side web searches the provider reported; NULL for none.
-- server_tool_cost: USD for server-side tools (web search), included in total_cost; NULL for
--   none.
ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS service_tier text;
ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS web_search_calls bigint;
ALTER TABLE llm_requests ADD COLUMN IF NOT EXISTS server_tool_cost numeric(20, 10);
