"""Operations: what operators and support staff do across the apps.

Tenant export, import and deletion, store-wide checks, stats and purges, the ``tenants``,
``storage`` and ``signing_keys`` commands, and the support admin's views and audited actions.
It sits above every feature app (accounts, workspaces, realtime) and imports them freely;
none of them imports it (docs/architecture.md, tests/test_architecture.py).
"""
