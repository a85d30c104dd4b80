"""The browsable API docs at /api/v5/docs/, rendered on the server.

Swagger UI and Redoc load their JavaScript from a CDN (drf-spectacular's defaults), and
nothing may be fetched at run time, so this page lists the operations of the OpenAPI schema
as plain HTML and links the schema itself for tools.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from drf_spectacular.settings import spectacular_settings

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    schema: dict[str, Any] = generator.get_schema(request=None, public=True)
    operations = [
        {
            "method": method.upper(),
            "path": route,
            "summary": operation.get("summary") or operation.get("operationId", ""),
            "description": operation.get("description", ""),
            "parameters": [parameter["name"] for parameter in operation.get("parameters", [])],
            "responses": sorted(operation.get("responses", {})),
        }
        for route, item in sorted(schema.get("paths", {}).items())
        for method, operation in item.items()
        if method in _METHODS
    ]
    return render(request, "api_docs.html", {"info": schema["info"], "operations": operations})
