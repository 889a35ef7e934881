"""Offline management of a store: merge, summarize over time, decay and archive, profile."""
