"""The live session page (docs/web.md): a shell its script fills over the WebSocket.

The shell knows only the session id from its URL. Whether the session exists, and whether the
signed-in user may see it, is the API's and the socket's answer to the page's script (another
tenant's session is "not found" there), so this view renders the same shell for every id.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from accounts.pages import render_page


@require_safe
def live(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    return render_page(request, "web/live.html", {"nav": "sessions", "session_id": session_id})
