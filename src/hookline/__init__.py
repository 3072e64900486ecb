"""Hookline: a self-hosted webhook service compatible with Accelo's webhooks API."""

from __future__ import annotations

__version__ = "0.1.0"
