"""The `voxelhub` command line.

`voxelhub up` runs the whole system on embedded defaults; the other commands manage
users, tokens and datastores, or run one service (for production deployments).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from voxelhub import embedded

DEFAULT_HOME = Path("data")


def _use_home(home: Path) -> None:
    """Point the metaserver at `home` unless DATABASE_URL selects another database."""
    home = home.resolve()
    os.environ["VOXELHUB_HOME"] = str(home)
    os.environ.setdefault("VOXELHUB_EMBEDDED", "1")
    if not os.environ.get("VOXELHUB_SECRET_KEY"):
        os.environ["VOXELHUB_SECRET_KEY"] = embedded.read_or_create_secret(home)


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metaserver.config.settings")
    try:
        import django
    except ImportError:
        raise click.ClickException(
            "the metaserver is not installed here: pip install 'voxelhub[metaserver]'"
        ) from None
    django.setup()


@click.group()
@click.version_option(package_name="voxelhub")
def main() -> None:
    """voxelhub: manage, convert and serve large 3D microscopy datasets."""


@main.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Folder for data, the SQLite database, credentials and logs.",
)
@click.option("--metaserver-port", default=8000, show_default=True, type=int)
@click.option("--datastore-port", default=8080, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--sample/--no-sample", default=True, help="Generate a sample dataset.")
def up(
    home: Path, metaserver_port: int, datastore_port: int, host: str, sample: bool
) -> None:
    """Run metaserver, datastore and job worker on embedded defaults (Ctrl-C stops)."""
    config = embedded.UpConfig(
        home=home.resolve(),
        host=host,
        metaserver_port=metaserver_port,
        datastore_port=datastore_port,
        sample=sample,
    )
    sys.exit(embedded.run_up(config))


@main.group()
def token() -> None:
    """API tokens for scripts."""


@token.command("create")
@click.argument("username")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
)
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
def token_create(username: str, home: Path, name: str) -> None:
    """Print a new API token for USERNAME."""
    _use_home(home)
    _django()
    from metaserver.bootstrap import SetupError, create_token_for

    try:
        click.echo(create_token_for(username, name=name))
    except SetupError as e:
        raise click.ClickException(str(e)) from None


@main.group()
def user() -> None:
    """User accounts."""


@user.command("set-password")
@click.argument("username")
@click.argument("password")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
)
def user_set_password(username: str, password: str, home: Path) -> None:
    """Set the password of USERNAME."""
    _use_home(home)
    _django()
    from metaserver.bootstrap import SetupError, set_password_for

    try:
        set_password_for(username, password)
    except SetupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"password of {username} changed")


@main.group()
def datastore() -> None:
    """Datastore nodes: run one, run its workers, or register one."""


@datastore.command("serve")
def datastore_serve() -> None:
    """Run a datastore node configured by VOXELHUB_DATASTORE_* variables."""
    from datastore.config import DatastoreSettings
    from datastore.serve import run
    from shared.env import SettingError

    try:
        settings = DatastoreSettings.from_env()
    except SettingError as e:
        raise click.ClickException(str(e)) from None
    run(settings)


@datastore.command("worker")
@click.option("--processes", default=1, show_default=True, type=int)
@click.option("--threads", default=2, show_default=True, type=int)
def datastore_worker(processes: int, threads: int) -> None:
    """Run job worker processes for this datastore's queue (needs a broker URL)."""
    from datastore.config import DatastoreSettings
    from datastore.worker import run_worker
    from shared.env import SettingError

    try:
        settings = DatastoreSettings.from_env()
    except SettingError as e:
        raise click.ClickException(str(e)) from None
    if not settings.broker_url:
        raise click.ClickException(
            "VOXELHUB_BROKER_URL must name a Redis or RabbitMQ broker for separate "
            "worker processes (the in-process broker only serves its own process)"
        )
    run_worker(settings, processes=processes, threads=threads)


@datastore.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--public-url", default=None, help="URL browsers use (default: URL).")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
)
def datastore_add(name: str, url: str, public_url: str | None, home: Path) -> None:
    """Register datastore NAME at URL with the metaserver and print its key."""
    _use_home(home)
    _django()
    from django.db import IntegrityError

    from metaserver.datastores.actions import do_create_datastore

    try:
        _store, key = do_create_datastore(
            name, url, public_url=public_url, key=secrets.token_urlsafe(32)
        )
    except IntegrityError:
        raise click.ClickException(f"a datastore named {name!r} exists") from None
    click.echo(f"VOXELHUB_DATASTORE_NAME={name}")
    click.echo(f"VOXELHUB_DATASTORE_KEY={key}")


@main.command(
    "manage",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
)
@click.pass_context
def manage(ctx: click.Context, home: Path) -> None:
    """Run a Django management command of the metaserver (migrate, shell...)."""
    _use_home(home)
    _django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["voxelhub manage", *ctx.args])


if __name__ == "__main__":
    main()
