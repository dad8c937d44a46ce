-- Billing variants (issue 15). One transaction.
-- service_tier: the service tier whose rates priced the call (flex, priority, batch, fast);
--   NULL for the standard tier, or when the call was not priced at a tier's rates.
-- web_search_calls: server-side web searches the provider reported; NULL for none.
-- server_tool_cost: USD for server-side tools (web search), included in total_cost; NULL for
--   none.
ALTER TABLE llm_requests ADD COLUMN service_tier TEXT;
ALTER TABLE llm_requests ADD COLUMN web_search_calls INTEGER;
ALTER TABLE llm_requests ADD COLUMN server_tool_cost NUMERIC;
