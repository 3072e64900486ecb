"""The exact bytes and headers of one delivery attempt (the hot path: a few microseconds each)."""

from __future__ import annotations

from collections.abc import Callable

import hookline
from hookline import config, domain
from hookline.delivery import payload, signing

USER_AGENT = f"Hookline/{hookline.__version__} (+https://github.com/hookline/hookline)"
STANDARD_WEBHOOKS_MESSAGE_ID_PREFIX = "dlv_"


def build_request(
    claimed: domain.ClaimedDelivery, settings: config.Settings, now: Callable[[], float]
) -> tuple[bytes, dict[str, str]]:
    """The body and headers POSTed for this delivery: content type, event, delivery id, signatures.

    A header whose configured name is empty is left out. `now` (epoch seconds) stamps webhook-timestamp.
    """
    body = payload.build_body(claimed.object_id, claimed.resource_url, claimed.content_type)
    headers = {"Content-Type": claimed.content_type, "User-Agent": USER_AGENT}
    if settings.event_header:
        headers[settings.event_header] = claimed.event_id
    if settings.delivery_id_header:
        headers[settings.delivery_id_header] = str(claimed.delivery_id)
    secret = claimed.secret
    if secret:
        prefixed = settings.signature_prefix
        if settings.signature_header:
            headers[settings.signature_header] = signing.hub_signature(
                secret, body, settings.signature_algorithm, prefixed
            )
        if settings.signature_256_header:
            headers[settings.signature_256_header] = signing.hub_signature(secret, body, "sha256", prefixed)
    if claimed.standard_webhooks:
        message_id = f"{STANDARD_WEBHOOKS_MESSAGE_ID_PREFIX}{claimed.delivery_id}"
        headers.update(signing.standard_webhooks_headers(secret, message_id, int(now()), body))
    return body, headers
