"""PostgreSQL + pgvector backend (production and scale-out)."""
