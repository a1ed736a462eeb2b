"""Where a crew's or supervisor's request is answered: the FastAPI application."""
