"""The project package: settings, routes, ASGI/WSGI entry points and the API's shared glue."""
