"""The render service: the HTTP API (``api``) on the job service (``jobs``), its table (``state``),
callbacks, output storage and the Python client."""
