"""AWS event-stream framing (``application/vnd.amazon.eventstream``), the binary format
Bedrock streams its replies in, written the way the service writes it so that botocore
(and the anthropic SDK's Bedrock client, which uses botocore's decoder) read the real
thing.

A frame (message): a 12-byte prelude (total length, headers length, CRC32 of those
8 bytes), the headers, the payload, and a CRC32 of everything before it. A header: name
length (1 byte), name, value type (1 byte; 7 is a string), value length (2 bytes), value.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

_STRING = 7  # header value type: UTF-8 string with a 2-byte length


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", _STRING, len(raw_value))
        + raw_value
    )


def event(event_type: str, payload: Any) -> bytes:
    """An event of a Bedrock stream: ``messageStart``, ``contentBlockDelta``, ``chunk``..."""
    return frame(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(payload, separators=(",", ":")).encode("utf-8"),
    )


def chunk_event(data: Any) -> bytes:
    """An ``invoke_model_with_response_stream`` chunk: the model's own JSON event,
    base64-encoded in the ``bytes`` member (botocore hands the caller the decoded bytes)."""
    raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return event("chunk", {"bytes": base64.b64encode(raw).decode("ascii")})


def exception_event(exception_type: str, message: str) -> bytes:
    """A modelled error in the middle of a stream (``throttlingException``,
    ``modelStreamErrorException``...): botocore raises it from the caller's iteration."""
    return frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode("utf-8"),
    )
