"""The delivery engine's entry points for the API and the server: synchronous dispatch and factories."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hookline import config, domain
from hookline.delivery import attempt, dispatcher, ssrf
from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Sender
from hookline.store.queue import DeliveryQueue

DISPATCH_LEASE_MARGIN_SECONDS = 5.0  # a synchronous dispatch's lease outlives its deadline by this much


@dataclass(frozen=True, slots=True)
class DispatchOutcome:
    """What a synchronous dispatch got: the receiver's status (None when there was no response) or the error."""

    delivery_id: int
    status_code: int | None
    error: str | None
    error_class: str | None
    outcome: domain.AttemptOutcome
    duration_ms: float


def build_retry_policy(settings: config.Settings) -> RetryPolicy:
    """The retry policy the settings describe (schedule, jitter, Retry-After bound)."""
    return RetryPolicy.from_settings(settings)


def build_address_policy(settings: config.Settings) -> ssrf.AddressPolicy:
    """The outbound address policy: public addresses plus settings.ssrf_allow_networks."""
    return ssrf.AddressPolicy(settings.ssrf_allow_networks)


def build_sender(settings: config.Settings) -> Sender:
    """A Sender for these settings (call `await sender.open()` inside the event loop)."""
    return Sender(settings, build_address_policy(settings))


def refusal_for_url(settings: config.Settings, trigger_url: str) -> str | None:
    """Why a trigger URL is refused at create time (an IP literal the policy forbids), or None."""
    return build_address_policy(settings).check_literal_url(trigger_url)


async def dispatch_now(
    queue: DeliveryQueue,
    sender: Sender,
    settings: config.Settings,
    retry_policy: RetryPolicy,
    event: domain.NewEvent,
    subscription_id: str,
    clock: Callable[[], float] = time.time,
) -> DispatchOutcome | None:
    """Deliver one event to one subscription now, through the dispatcher's code path, and log the attempt.

    None when the subscription does not exist (or is deleted, or belongs to another deployment). A 410
    answer removes the subscription as in the background. There are no retries.
    """
    owner = dispatcher.new_owner()
    lease_seconds = max(settings.lease_seconds, settings.delivery_timeout_seconds + DISPATCH_LEASE_MARGIN_SECONDS)
    claimed = await queue.enqueue_leased(event, subscription_id, owner, lease_seconds)
    if claimed is None:
        return None
    result = await attempt.attempt_delivery(claimed, sender, settings, retry_policy, owner, clock)
    await queue.record([result])
    return DispatchOutcome(
        delivery_id=claimed.delivery_id,
        status_code=result.status_code,
        error=result.error,
        error_class=result.error_class,
        outcome=result.outcome,
        duration_ms=result.duration_ms,
    )
