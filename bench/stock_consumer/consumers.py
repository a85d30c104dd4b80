"""The stock consumer: join the session's group, fan every message out to it, ack the sender."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class StockConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.group = "session." + self.scope["url_route"]["kwargs"]["session_id"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """``state.patch`` goes out as ``state.changed``, ``event.publish`` as ``event``.

        Whatever else the message carries (the benchmark's per-sender counter) travels with it.
        """
        kind = content.pop("type", None)
        msg_id = content.pop("id", None)
        out = "state.changed" if kind == "state.patch" else "event"
        await self.channel_layer.group_send(
            self.group, {"type": "fan.out", "message": {"type": out, **content}}
        )
        await self.send_json({"type": "ack", "id": msg_id})

    async def fan_out(self, event: dict[str, Any]) -> None:
        await self.send_json(event["message"])
