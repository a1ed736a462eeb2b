"""The HTTP API for crews, supervisors and admins (FastAPI); `create_app` builds it."""

from api.app import create_app

__all__ = ["create_app"]
