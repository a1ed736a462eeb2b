"""The API's routes, one module per domain, each with its request and response models."""
