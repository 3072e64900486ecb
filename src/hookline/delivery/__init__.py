"""The delivery engine: signing, payload bodies, the HTTP client, retry policy, the dispatcher loop."""
