"""The HTTP API: the Accelo-compatible webhooks endpoints, OAuth token endpoint and event reporting."""
