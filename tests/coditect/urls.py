"""The project's routes plus views that exist only to exercise the error handling."""

import threading
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coditect.urls import urlpatterns as project_urlpatterns
from core.problems import ApiError
from core.routes import optional_slash
from fdb_backend import turns
from fdb_backend.pool import storage_turns


class EchoView(APIView):
    permission_classes = (AllowAny,)

    def post(self, request: Request) -> Response:
        return Response({"echo": request.data})


class ItemSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=5)


class OrderSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField()
    items = ItemSerializer(many=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["email"].endswith("@blocked.example"):
            raise serializers.ValidationError("This domain may not order.", code="blocked")
        return attrs


class ValidateView(APIView):
    permission_classes = (AllowAny,)

    def post(self, request: Request) -> Response:
        serializer = OrderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


RAISED: dict[str, Callable[[], Exception]] = {
    "not_authenticated": exceptions.NotAuthenticated,
    "throttled": lambda: exceptions.Throttled(wait=2.5),
    "api_error": lambda: ApiError(
        409,
        "email_taken",
        "An account with this email exists.",
        [{"attr": "email", "code": "taken", "detail": "Already registered."}],
        headers={"X-Hint": "log in"},
    ),
    "not_found": lambda: Http404("No such order."),
    "crash": lambda: RuntimeError("boom"),
}


class RaiseView(APIView):
    permission_classes = (AllowAny,)

    def get(self, request: Request, kind: str) -> Response:
        raise RAISED[kind]()


class ClosedView(APIView):
    """Keeps the project's default permissions: nobody is authenticated yet."""

    def get(self, request: Request) -> Response:
        return Response({})


class WhereView(APIView):
    """Where a request runs: its thread, and whether a storage turn was free when it started
    (coditect/api_lane.py; the test connects ``STARTED`` to request_started)."""

    permission_classes = (AllowAny,)
    lean_methods = frozenset({"get"})

    def get(self, request: Request) -> Response:
        return Response(WHERE)

    def post(self, request: Request) -> Response:  # not lean
        return Response(WHERE)


WHERE: dict[str, Any] = {}


def note_where(**kwargs: Any) -> None:
    """A request_started receiver: the thread, and whether a storage turn was free."""
    turns = storage_turns()
    free = turns.acquire(blocking=False)
    if free:
        turns.release()
    WHERE.update(thread=threading.current_thread().name, turn_free=free)


class CommitView(APIView):
    """A lean request through a durable commit, as the engine makes one: it gives the turn
    back (turns.waiting()) while it waits, then takes one again for more storage work."""

    permission_classes = (AllowAny,)
    lean_methods = frozenset({"get"})

    def get(self, request: Request) -> Response:
        turns.waiting()
        with storage_turns().turn():
            pass
        return Response({})


class HeldView(APIView):
    """A lean request that waits for the test (``HELD``) while it holds its storage turn."""

    permission_classes = (AllowAny,)
    lean_methods = frozenset({"get"})

    def get(self, request: Request) -> Response:
        HELD["started"].set()
        HELD["go"].wait(10)
        return Response({})

    post = get  # not lean: on the lane's other pool


HELD: dict[str, threading.Event] = {"started": threading.Event(), "go": threading.Event()}


def held_started(request: HttpRequest) -> HttpResponse:
    """A page (not on the lane's pools) that answers once a HeldView request holds its turn:
    for a test of a real server, in another process than ``HELD``."""
    return HttpResponse(status=200 if HELD["started"].wait(10) else 504)


def held_go(request: HttpRequest) -> HttpResponse:
    """A page that lets the HeldView requests of a real server go on."""
    HELD["go"].set()
    return HttpResponse(status=200)


def cookies(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"{}", content_type="application/json")
    response.set_cookie("first", "1", path="/api/")
    response.set_cookie("second", "2", httponly=True)
    return response


def no_content(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"one,", b"two,", b"three"]), content_type="text/csv")


urlpatterns = [
    *project_urlpatterns,
    *optional_slash("api/test/echo", EchoView.as_view(), name="test-echo"),
    *optional_slash("api/test/validate", ValidateView.as_view(), name="test-validate"),
    *optional_slash("api/test/closed", ClosedView.as_view(), name="test-closed"),
    path("api/test/raise/<str:kind>", RaiseView.as_view(), name="test-raise"),
    path("api/test/where", WhereView.as_view(), name="test-where"),
    path("api/test/stream", stream, name="test-stream"),
    path("api/test/no-content", no_content, name="test-no-content"),
    path("api/test/commit", CommitView.as_view(), name="test-commit"),
    path("api/test/held", HeldView.as_view(), name="test-held"),
    path("api/test/cookies", cookies, name="test-cookies"),
    path("test/held/started", held_started, name="test-held-started"),
    path("test/held/go", held_go, name="test-held-go"),
]
