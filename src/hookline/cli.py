"""The `hookline` command line: serve, worker, migrate, and the admin commands."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hookline import bootstrap, errors, runtime
from hookline.config import CONFIG_FILE_ENV, Settings
from hookline.domain import NewEvent
from hookline.store import accounts, delivery_log, subscriptions, urls
from hookline.store.database import Database
from hookline.store.queue import FailurePolicy
from hookline.store.queues import open_queue
from hookline.store.sqlite_queue import DispatcherAlreadyRunning, acquire_dispatcher_lock

T = TypeVar("T")

app = typer.Typer(help="Hookline: self-hosted webhooks, compatible with Accelo's webhooks API.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Issue API tokens.", no_args_is_help=True)
apps_app = typer.Typer(help="Register OAuth service applications (client credentials).", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Inspect subscriptions.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Inspect the delivery log.", no_args_is_help=True)
deployments_app = typer.Typer(help="Manage deployments (tenants).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(apps_app, name="apps")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(deployments_app, name="deployments")

# Wide when not on a terminal, so that ids piped to scripts and logs are never folded.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML or JSON settings file", exists=True)]
DeploymentOption = Annotated[str, typer.Option("--deployment", help="Deployment slug")]


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the config file, HOOKLINE_* variables and the options given (which win)."""
    if config is not None:
        os.environ[CONFIG_FILE_ENV] = str(config)
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except (ValidationError, ValueError) as exc:
        err.print(f"[red]error:[/red] invalid settings: {exc}")
        raise typer.Exit(2) from None


def _run(work: Callable[[Database], Awaitable[T]], settings: Settings) -> T:
    async def wrapped() -> T:
        db = Database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        runtime.ensure_migrated(settings)
        return asyncio.run(wrapped())
    except errors.HooklineError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


async def _deployment(db: Database, slug: str) -> Any:
    found = await accounts.get_deployment(db, slug)
    if found is None:
        raise errors.InvalidRequest(f"deployment: no deployment {slug!r} (hookline deployments create {slug})")
    return found


async def _user(db: Database, slug: str, user: str) -> Any:
    deployment = await _deployment(db, slug)
    found = await accounts.find_user(db, deployment.id, user)
    if found is None:
        raise errors.InvalidRequest(f"user: no user {user!r} in deployment {slug!r} (hookline users create)")
    return found


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
    dispatcher: Annotated[bool, typer.Option("--dispatcher/--no-dispatcher", help="Also run the dispatcher")] = True,
) -> None:
    """Run the API (and, by default, the dispatcher) in this process; migrates the store first."""
    import uvicorn

    from hookline.api.app import create_app

    settings = load_settings(config, host=host, port=port, database_url=database_url)
    if dispatcher and urls.is_sqlite(settings.database_url):
        _refuse_second_sqlite_dispatcher(settings)
    runtime.ensure_migrated(settings)
    first = _run(bootstrap.bootstrap_if_empty, settings)
    base = settings.base_url
    out.print(f"Hookline listening on {base} (store: {settings.database_url})")
    out.print(f"  API:           {base}/api/v0/webhooks/subscriptions")
    out.print(f"  Control panel: {base}/webhooks")
    out.print(f"  OpenAPI:       {base}/openapi.json")
    if first is not None:
        out.print(f"First start: created deployment '{first.deployment_slug}' with admin {first.admin_email}.")
        out.print("Admin token (shown once; keep it safe):")
        out.print(first.admin_token, highlight=False, soft_wrap=True)
        out.print(
            f"Try: curl -H 'Authorization: Bearer {first.admin_token}' {base}/api/v0/webhooks/subscriptions/types",
            highlight=False,
            soft_wrap=True,
        )
    sys.stdout.flush()
    _exit_quietly_after_graceful_shutdown()
    uvicorn.run(
        create_app(settings, with_dispatcher=dispatcher),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.delivery_timeout_seconds) + 5,
    )


def _refuse_second_sqlite_dispatcher(settings: Settings) -> None:
    """Fail fast, before printing anything else, when another process already dispatches from this SQLite file."""
    try:
        with acquire_dispatcher_lock(urls.sqlite_path(settings.database_url)):
            pass  # free now; the process takes it for good when it starts (a racing start still fails there)
    except DispatcherAlreadyRunning as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _exit_quietly_after_graceful_shutdown() -> None:
    """Make SIGTERM/SIGINT end in exit code 0.

    uvicorn shuts down gracefully on these signals and then re-raises them with the handlers that were in place
    before it started; with these no-op handlers the process then simply returns from uvicorn.run and exits 0.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: None)


@app.command()
def worker(database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
    """Run the dispatcher alone (scale out on PostgreSQL: any number of workers)."""
    import uvloop

    settings = load_settings(config, database_url=database_url)
    runtime.ensure_migrated(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with runtime.running(settings, with_dispatcher=True):
            err.print(f"Hookline worker {os.getpid()} dispatching from {settings.database_url}")
            await stop.wait()
            err.print("stopping: finishing in-flight deliveries")

    try:
        uvloop.run(main())
    except RuntimeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def migrate(database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
    """Apply the database migrations."""
    settings = load_settings(config, database_url=database_url)
    runtime.ensure_migrated(settings)
    out.print(f"migrated {settings.database_url}")


@app.command()
def prune(database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
    """Delete finished deliveries older than the retention (retention_days) now."""
    settings = load_settings(config, database_url=database_url)
    runtime.ensure_migrated(settings)

    async def main() -> int:
        queue = open_queue(settings.database_url, FailurePolicy())
        await queue.open()
        try:
            return await runtime.prune_once(queue, settings)
        finally:
            await queue.close()

    deleted = asyncio.run(main())
    out.print(f"pruned {deleted} finished deliveries older than {settings.retention_days:g} days")


@app.command()
def emit(
    event_id: str,
    object_id: str,
    deployment: DeploymentOption = bootstrap.DEFAULT_DEPLOYMENT_SLUG,
    resource_url: Annotated[str | None, typer.Option(help="Payload resource_url (default: from the template)")] = None,
    user_id: Annotated[list[int] | None, typer.Option("--user-id", help="Only subscriptions these users own")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Deliver at most once per key within 24 h")] = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Report one event, as the platform would through POST /api/v0/webhooks/events."""
    from hookline.api.event_input import new_event_from

    settings = load_settings(config, database_url=database_url)

    async def main(db: Database) -> Any:
        found = await _deployment(db, deployment)
        fields: dict[str, object] = {"event_id": event_id, "object_id": object_id, "resource_url": resource_url}
        if user_id:
            fields["user_ids"] = list(user_id)
        if idempotency_key:
            fields["idempotency_key"] = idempotency_key
        new_event: NewEvent = new_event_from(fields, settings, settings.build_catalogue(), found)
        queue = open_queue(settings.database_url, FailurePolicy())
        await queue.open()
        try:
            return (await queue.ingest([new_event], settings.idempotency_window_seconds))[0]
        finally:
            await queue.close()

    stored = _run(main, settings)
    note = " (duplicate: already reported)" if stored.duplicate else ""
    out.print(f"event {stored.id}: {stored.event_id} {stored.object_id} -> {stored.deliveries} deliveries{note}")


@deployments_app.command("create")
def deployments_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    standard_webhooks: Annotated[bool, typer.Option(help="Send Standard Webhooks headers too")] = False,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a deployment (a tenant)."""
    settings = load_settings(config, database_url=database_url)
    created = _run(
        lambda db: accounts.create_deployment(db, slug, name or slug, standard_webhooks=standard_webhooks),
        settings,
    )
    out.print(f"deployment {created.slug} (id {created.id})")


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Option(help="Full name")],
    email: Annotated[str, typer.Option(help="Email (unique in the deployment)")],
    deployment: DeploymentOption = bootstrap.DEFAULT_DEPLOYMENT_SLUG,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a user in a deployment; prints the user's id."""
    settings = load_settings(config, database_url=database_url)

    async def main(db: Database) -> Any:
        found = await _deployment(db, deployment)
        return await accounts.create_user(db, found.id, name, email)

    user = _run(main, settings)
    out.print(user.id)


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="The user's email or id")],
    deployment: DeploymentOption = bootstrap.DEFAULT_DEPLOYMENT_SLUG,
    admin: Annotated[bool, typer.Option("--admin", help="A deployment admin token")] = False,
    scope: Annotated[str, typer.Option(help="Scopes, e.g. 'read(webhooks)'")] = "read(all) write(all)",
    expires_in: Annotated[int | None, typer.Option(help="Seconds until it expires (default: 30 days)")] = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Issue a bearer token; prints the token alone, so scripts can capture it."""
    from hookline.api.auth import parse_scopes

    settings = load_settings(config, database_url=database_url)

    async def main(db: Database) -> str:
        owner = await _user(db, deployment, user)
        scopes = " ".join(parse_scopes(scope))
        lifetime = expires_in if expires_in is not None else settings.token_default_expires_seconds
        return await accounts.create_token(db, owner, scopes=scopes, is_admin=admin, expires_at=time.time() + lifetime)

    print(_run(main, settings))


@apps_app.command("create")
def apps_create(
    name: Annotated[str, typer.Option(help="The application's name")],
    user: Annotated[str, typer.Option(help="The user it acts as (email or id)")],
    deployment: DeploymentOption = bootstrap.DEFAULT_DEPLOYMENT_SLUG,
    admin: Annotated[bool, typer.Option("--admin", help="Its tokens are deployment admin tokens")] = False,
    scope: Annotated[str, typer.Option(help="The most its tokens may ask for")] = "read(all) write(all)",
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a service application; prints client_id and client_secret (the secret is shown once)."""
    from hookline.api.auth import parse_scopes

    settings = load_settings(config, database_url=database_url)

    async def main(db: Database) -> tuple[str, str]:
        owner = await _user(db, deployment, user)
        return await accounts.create_oauth_client(
            db, owner, name, is_admin=admin, max_scopes=" ".join(parse_scopes(scope))
        )

    client_id, client_secret = _run(main, settings)
    print(f"client_id={client_id}")
    print(f"client_secret={client_secret}")


@subscriptions_app.command("list")
def subscriptions_list(
    deployment: DeploymentOption = bootstrap.DEFAULT_DEPLOYMENT_SLUG,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted subscriptions")] = False,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a deployment's subscriptions as a table."""
    settings = load_settings(config, database_url=database_url)

    async def main(db: Database) -> Any:
        found = await _deployment(db, deployment)
        return await subscriptions.list_for(db, found.id, user_id=None, limit=None, offset=0, include_deleted=deleted)

    rows = _run(main, settings)
    table = Table(title=f"Subscriptions of {deployment}")
    table.add_column("subscription_id", no_wrap=True, min_width=24)
    table.add_column("event_id", no_wrap=True)
    for column in ("trigger_url", "content_type", "owner", "state"):
        table.add_column(column, overflow="fold")
    for s, owner in rows:
        state = "live" if s.deleted_at is None else f"deleted ({s.deleted_reason})"
        table.add_row(s.id, s.event_id, s.trigger_url, s.content_type, owner.email, state)
    out.print(table)


@deliveries_app.command("list")
def deliveries_list(
    subscription: Annotated[str, typer.Option(help="Subscription id")],
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a subscription's newest deliveries and their last result."""
    from hookline.api.views import timestamp

    settings = load_settings(config, database_url=database_url)
    rows = _run(lambda db: delivery_log.list_for_subscription(db, subscription, limit=limit, offset=0), settings)
    table = Table(title=f"Deliveries of {subscription}")
    for column in ("delivery_id", "event", "object_id", "state", "attempts", "last status", "last error", "created"):
        table.add_column(column, overflow="fold")
    for d in rows:
        table.add_row(
            str(d.id),
            d.event_id,
            d.object_id,
            d.state,
            str(d.attempts),
            "" if d.last_status_code is None else str(d.last_status_code),
            d.last_error or "",
            timestamp(d.created_at) or "",
        )
    out.print(table)


def main() -> None:
    """Entry point of the `hookline` console script."""
    app()
