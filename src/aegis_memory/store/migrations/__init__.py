"""Alembic migrations, shipped inside the package so an installed server can upgrade itself."""
