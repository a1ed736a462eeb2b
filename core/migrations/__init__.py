"""Alembic migrations of the LiftLedger schema."""
