"""``majordomo-log ui``: a local, read-only dashboard over the log.

Spend over time by model, feature, user or key alias (a chart, and the same figures as
tables), tokens by kind and cache savings, errors and latency percentiles; the budgets
and how much of each is used; the most expensive calls, and a page per call with its row
and its stored body. Works on SQLite, PostgreSQL and MySQL through the stores' own query
interface; never writes.

One job per module: ``server.py`` (HTTP, routing, errors, security headers),
``backend.py`` (the loop thread that owns the stores), ``params.py`` (what a page is
asked for), ``queries.py`` and ``percentiles.py`` (the figures), ``overview.py``,
``pages.py`` (budgets, expensive calls) and ``bodies.py`` (a call) for the pages,
``html.py`` (escaping, forms and the frame), ``assets.py`` (the files in ``static/``).
"""

from __future__ import annotations

from .server import DEFAULT_HOST, DEFAULT_PORT, Dashboard, serve_dashboard

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Dashboard", "serve_dashboard"]
