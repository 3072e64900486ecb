"""Request-body schemas for the OpenAPI document (bodies are parsed by hand to accept JSON and forms alike)."""

from __future__ import annotations

from typing import Any

_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event_id", "object_id"],
    "properties": {
        "event_id": {"type": "string", "example": "assign_task"},
        "object_id": {"oneOf": [{"type": "string"}, {"type": "integer"}], "example": 42},
        "resource_url": {"type": "string", "format": "uri"},
        "user_ids": {"type": "array", "items": {"type": "integer"}},
        "idempotency_key": {"type": "string", "maxLength": 200},
    },
}

SCHEMAS: dict[str, Any] = {
    "SubscriptionCreate": {
        "type": "object",
        "required": ["trigger_url", "event_id"],
        "properties": {
            "trigger_url": {"type": "string", "format": "uri", "maxLength": 2048},
            "event_id": {"type": "string", "example": "assign_task"},
            "content_type": {
                "type": "string",
                "enum": ["application/x-www-form-urlencoded", "application/json"],
                "default": "application/x-www-form-urlencoded",
            },
            "secret": {"type": "string", "maxLength": 256},
        },
    },
    "ObjectId": {
        "type": "object",
        "required": ["object_id"],
        "properties": {"object_id": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
    },
    "Event": _EVENT,
    "EventReport": {
        "oneOf": [
            _EVENT,
            {
                "type": "object",
                "required": ["events"],
                "properties": {"events": {"type": "array", "maxItems": 1000, "items": _EVENT}},
            },
        ]
    },
    "TokenRequest": {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "scope": {"type": "string", "example": "read(all) write(webhooks)"},
            "expires_in": {"type": "integer"},
        },
    },
}
