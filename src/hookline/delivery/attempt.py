"""One delivery attempt: build the request, send it, and classify what came back."""

from __future__ import annotations

import logging
from collections.abc import Callable

from hookline import config, domain
from hookline.delivery import request
from hookline.delivery import sender as sender_module
from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Sender, SendResult

logger = logging.getLogger(__name__)

HTTP_GONE = 410
NOT_RETRIED_ERROR_CLASSES = frozenset({"invalid_url"})  # trying again cannot help; the subscriber must fix the URL


async def attempt_delivery(
    claimed: domain.ClaimedDelivery,
    sender: Sender,
    settings: config.Settings,
    retry_policy: RetryPolicy,
    owner: str,
    clock: Callable[[], float],
) -> domain.AttemptResult:
    """Send one attempt of a claimed delivery and say what the store should do next; never raises for it."""
    started_at = clock()
    try:
        body, headers = request.build_request(claimed, settings, clock)
        sent = await sender.send(claimed.trigger_url, body, headers)
    except Exception as exc:  # a bug must cost one attempt, not the dispatcher
        logger.exception("delivery %s: the attempt failed inside Hookline", claimed.delivery_id)
        sent = SendResult(
            None,
            None,
            f"internal error: {type(exc).__name__}: {exc}"[: sender_module.ERROR_TEXT_MAX_CHARS],
            "internal_error",
            0.0,
        )
    return classify(claimed, sent, retry_policy, owner, started_at)


def classify(
    claimed: domain.ClaimedDelivery,
    sent: SendResult,
    retry_policy: RetryPolicy,
    owner: str,
    started_at: float,
) -> domain.AttemptResult:
    """The attempt's outcome: 2xx success, 410 gone, anything else a failure retried while the policy allows."""
    attempt_number = claimed.attempts_done + 1
    status_code = sent.status_code
    retry_in_seconds: float | None = None
    outcome: domain.AttemptOutcome
    if status_code is not None and 200 <= status_code < 300:
        outcome = "success"
    elif status_code == HTTP_GONE:
        outcome = "gone"
    else:
        if claimed.retries_allowed and sent.error_class not in NOT_RETRIED_ERROR_CLASSES:
            retry_in_seconds = retry_policy.delay_after(attempt_number, status_code, sent.retry_after)
        outcome = "failed" if retry_in_seconds is None else "retry"
    return domain.AttemptResult(
        delivery_id=claimed.delivery_id,
        subscription_id=claimed.subscription_id,
        lease_owner=owner,
        attempt_number=attempt_number,
        started_at=started_at,
        duration_ms=sent.duration_ms,
        status_code=status_code,
        response_excerpt=sent.response_excerpt,
        error=sent.error,
        error_class=sent.error_class,
        outcome=outcome,
        retry_in_seconds=retry_in_seconds,
    )
