"""The catalogue of webhook event types a subscription may choose from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventType:
    """One subscribable event: its id, a human title, and the object table and change it fires on."""

    event_id: str
    event_title: str
    trigger_table: str
    trigger_type: str

    @property
    def is_delete(self) -> bool:
        """Whether the event reports a deletion (its payload then has no resource_url)."""
        return self.trigger_type == "delete"


DEFAULT_EVENT_TYPES: tuple[EventType, ...] = (
    EventType("assign_task", "Task assigned", "task", "update"),
    EventType("unassign_task", "Task unassigned", "task", "update"),
    EventType("create_task", "Task created", "task", "create"),
    EventType("create_quote", "Quote created", "quote", "create"),
    EventType("create_request", "Request created", "request", "create"),
    EventType("update_request_status", "Request status changed", "request", "update"),
    EventType("create_invoice_pdf", "Invoice PDF generated", "invoice", "create"),
    EventType("create_purchase_pdf", "Purchase PDF generated", "purchase", "create"),
    EventType("create_issue", "Issue created", "issue", "create"),
    EventType("update_issue", "Issue updated", "issue", "update"),
    EventType("create_contact", "Contact created", "contact", "create"),
    EventType("update_contact", "Contact updated", "contact", "update"),
    EventType("create_company", "Company created", "company", "create"),
    EventType("update_company", "Company updated", "company", "update"),
    EventType("create_invoice", "Invoice created", "invoice", "create"),
    EventType("update_invoice", "Invoice updated", "invoice", "update"),
    EventType("delete_invoice", "Invoice deleted", "invoice", "delete"),
    EventType("create_sale", "Sale created", "sale", "create"),
    EventType("update_sale", "Sale updated", "sale", "update"),
    EventType("delete_activity", "Activity deleted", "activity", "delete"),
    EventType("create_activity", "Activity created", "activity", "create"),
    EventType("update_activity", "Activity updated", "activity", "update"),
)

# Irregular plurals for resource URLs; the rest take an "s".
_RESOURCE_PLURALS = {"company": "companies", "activity": "activities"}


def resource_name(trigger_table: str) -> str:
    """The API resource (collection) name for a trigger table, e.g. company -> companies."""
    return _RESOURCE_PLURALS.get(trigger_table, trigger_table + "s")


class Catalogue:
    """The event types known to this service: the defaults plus any from configuration."""

    def __init__(self, extra: tuple[EventType, ...] = ()) -> None:
        self._by_id: dict[str, EventType] = {}
        for event_type in DEFAULT_EVENT_TYPES + extra:
            self._by_id[event_type.event_id] = event_type

    def get(self, event_id: str) -> EventType | None:
        """The event type with this id, or None."""
        return self._by_id.get(event_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._by_id

    def all(self) -> list[EventType]:
        """Every event type, in catalogue order."""
        return list(self._by_id.values())
