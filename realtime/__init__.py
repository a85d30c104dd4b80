"""Channels consumers: WebSocket auth, presence, event log and replay, file locks."""
