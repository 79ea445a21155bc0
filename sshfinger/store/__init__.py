"""
The user store: an in-memory view (L{cached.CachedStore}) over a durable backend (SQLite by default, or memory).
"""
