"""``python -m tests.realtime.deflate_counting``: ``python -m coditect.serve`` that also writes
every message it deflates to the file ``$DEFLATE_LOG`` (one JSON line each: the text and the
parameters), so that a test over TCP can count how often a broadcast was deflated.
"""

from __future__ import annotations

import json
import os

from coditect import serve


def main() -> None:
    path = os.environ["DEFLATE_LOG"]
    deflate = serve.deflate

    def counted(payload: bytes, level: int, window_bits: int, mem_level: int) -> bytes:
        line = {"text": payload.decode(), "level": level, "window_bits": window_bits}
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
        return deflate(payload, level, window_bits, mem_level)

    serve.deflate = counted  # DeflateCache looks the function up at every miss
    serve.main()


if __name__ == "__main__":
    main()
