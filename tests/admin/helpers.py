"""Support URLs of the personas' data, and what an audit entry must say."""

from __future__ import annotations

from django.urls import reverse

from accounts.models import StaffAuditEntry
from tests.accounts.helpers import Api, Persona


def support(name: str, *args) -> str:
    return reverse(f"admin:support_{name}", args=args)


def workspace_session(api: Api, persona: Persona, name: str = "Main") -> str:
    response = api.post(
        "/api/v5/sessions",
        {"name": name, "workspace_path": "/work/app", "editor_state": {"theme": "dark"}},
        persona.access,
    )
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def the_audit_entry(**expected) -> StaffAuditEntry:
    """The one audit entry there is, checked field by field."""
    (entry,) = StaffAuditEntry.objects.all()
    for field, value in expected.items():
        assert getattr(entry, field) == value, (field, getattr(entry, field), value)
    assert entry.created_at is not None
    return entry
