"""The shared core: what every app needs and no app owns.

The problem+json error model, strict JSON parsing and rendering, signed list cursors, HTTP
conditional requests, request ids, route helpers and time. It sits just above the storage
layer (``fdb_backend``) and imports nothing of the apps or of the project wiring
(``coditect``): docs/architecture.md has the rule and tests/test_architecture.py enforces it.
"""
