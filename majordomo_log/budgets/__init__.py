"""Budgets: limits on spend, tokens or requests, checked before a call and charged after."""
