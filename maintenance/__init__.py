"""Maintenance records: what crews did to an elevator, optionally signed with their own key."""
