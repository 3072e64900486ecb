"""The control panel: server-rendered pages at /webhooks."""
