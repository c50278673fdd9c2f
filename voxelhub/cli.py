"""The `voxelhub` command line.

`voxelhub up` runs the whole system on embedded defaults; the other commands manage
users, tokens and datastores, or run one service (for production deployments).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

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


def _numbers(kind: type, count: tuple[int, ...]) -> click.ParamType:
    """A click type for comma-separated numbers (`11,11,25`)."""

    class Numbers(click.ParamType):
        name = "x,y,z"

        def convert(
            self,
            value: object,
            param: click.Parameter | None,
            ctx: click.Context | None,
        ) -> tuple[float, ...]:
            if isinstance(value, tuple):
                return value
            try:
                parts = tuple(kind(v) for v in str(value).split(","))
            except ValueError:
                self.fail(f"{value!r} is not a comma-separated list of numbers")
            if len(parts) not in count:
                self.fail(f"{value!r} needs {' or '.join(map(str, count))} values")
            return parts

    return Numbers()


@main.command("convert")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--voxel-size",
    type=_numbers(float, (3,)),
    help="Voxel size x,y,z (default: what the input declares, e.g. NIfTI, OME).",
)
@click.option("--unit", default="nanometer", show_default=True)
@click.option(
    "--format",
    "data_format",
    type=click.Choice(["wkw", "zarr3"]),
    default="wkw",
    show_default=True,
)
@click.option("--layer-name", help="Name of the layer (prefix when several).")
@click.option(
    "--category",
    type=click.Choice(["color", "segmentation"]),
    help="Default: segmentation for one channel of integers whose layer name "
    "contains seg or label (or that the input's metadata marks so), else color.",
)
@click.option("--dtype", help="Data type of a raw input (uint8, uint16, ...).")
@click.option("--shape", type=_numbers(int, (3, 4)), help="x,y,z[,c] of a raw input.")
@click.option(
    "--raw-order",
    type=click.Choice(["F", "C"]),
    default="F",
    show_default=True,
    help="Raw layout: F = x fastest (z slices of y rows), C = z fastest.",
)
@click.option(
    "--split-channels",
    is_flag=True,
    help="One layer per channel, also for RGB (default: RGB becomes uint24).",
)
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1))
@click.option(
    "--shard-size",
    default=256,
    show_default=True,
    type=int,
    help="Side of a zarr3 shard, a power of two 32..1024.",
)
@click.option(
    "--task-mib",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Memory one task may hold, in MiB.",
)
@click.option("--no-downsample", is_flag=True, help="Write mag 1 only.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
def convert(
    input_path: Path,
    output: Path,
    voxel_size: tuple[float, ...] | None,
    unit: str,
    data_format: str,
    layer_name: str | None,
    category: str | None,
    dtype: str | None,
    shape: tuple[float, ...] | None,
    raw_order: str,
    split_channels: bool,
    processes: int,
    shard_size: int,
    task_mib: int,
    no_downsample: bool,
    overwrite: bool,
) -> None:
    """Convert INPUT (TIFF, image slices, NIfTI, raw, Zarr, N5, WKW, ...) into a
    WEBKNOSSOS dataset at OUTPUT with a full mag pyramid."""
    import signal
    import time

    # One thread per process (BLAS is not used), so worker processes can be forked.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from shared.conversions import (
        ConversionError,
        ConversionOptions,
        SourceHints,
    )
    from shared.conversions import (
        convert as run_conversion,
    )
    from shared.conversions.local import Progress as Step
    from shared.datasource import Category, DataFormat, VoxelSize

    if output.exists() and not overwrite:
        raise click.ClickException(f"{output} exists (use --overwrite to replace it)")
    try:
        size = VoxelSize(voxel_size, unit) if voxel_size else None  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--voxel-size") from None
    options = ConversionOptions(
        data_format=DataFormat(data_format),
        voxel_size=size,
        category=Category(category) if category else None,
        split_channels=split_channels,
        shard_size=shard_size,
        task_bytes=task_mib << 20,
        downsample=not no_downsample,
    )
    hints = SourceHints(
        dtype=dtype,
        shape=tuple(int(v) for v in shape) if shape else None,
        order=raw_order,
        layer_name=layer_name,
        category=options.category,
    )
    started = time.perf_counter()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks  {task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    job = bar.add_task("converting", total=None, rate="")

    def on_progress(step: Step) -> None:
        if not bar.live.is_started:
            bar.start()  # after planning: input errors print one line, no bar
        rate = step.voxel_bytes / max(step.seconds, 1e-6) / 1e6
        bar.update(
            job,
            description=f"stage {step.stage + 1}/{step.stages}",
            completed=step.done,
            total=step.total,
            rate=f"{rate:,.0f} MB/s",
        )

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # the conversion removes its staging folder

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        props = run_conversion(
            input_path,
            output,
            options,
            hints,
            processes=processes,
            overwrite=overwrite,
            on_progress=on_progress,
        )
    except ConversionError as e:
        raise click.ClickException(str(e)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar.live.is_started:
            bar.stop()
    layers = ", ".join(
        f"{layer.name} ({layer.category}, {layer.element_class}, "
        f"{len(layer.mags)} mags)"
        for layer in props.layers
    )
    click.echo(
        f"converted {input_path} -> {output} in {time.perf_counter() - started:.1f} s: "
        f"{layers}"
    )


def _client(url: str | None, token: str | None) -> Any:
    from voxelhub.client import Client

    try:
        return Client(url, token)
    except ValueError as e:
        raise click.ClickException(str(e)) from None


_url_option = click.option(
    "--url", envvar="VOXELHUB_URL", help="Metaserver URL [env: VOXELHUB_URL]."
)
_token_option = click.option(
    "--token",
    envvar="VOXELHUB_TOKEN",
    help="API token [env: VOXELHUB_TOKEN; prefer it: options show in ps].",
)


@main.command("upload")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="The dataset's name.")
@click.option("--organization", required=True)
@click.option("--voxel-size", type=_numbers(float, (3,)), help="x,y,z, e.g. 11,11,24.")
@click.option("--unit", default="nanometer", show_default=True)
@click.option("--layer-name", help="Layer name for a converted input.")
@click.option("--category", type=click.Choice(["color", "segmentation"]))
@click.option("--folder", type=click.IntRange(1), help="Folder id.")
@click.option("--team", "teams", multiple=True, help="Allowed team (repeatable).")
@click.option(
    "--format",
    "data_format",
    type=click.Choice(["wkw", "zarr3"]),
    help="Output format if the upload is converted (default: wkw).",
)
@click.option("--dtype", help="Data type of a raw file (uint8, uint16, ...).")
@click.option("--shape", type=_numbers(int, (3, 4)), help="x,y,z[,c] of a raw file.")
@click.option(
    "--raw-order",
    type=click.Choice(["F", "C"]),
    default="F",
    show_default=True,
    help="Raw layout: F = x fastest (z slices of y rows), C = z fastest.",
)
@click.option("--header-bytes", default=0, type=click.IntRange(0), show_default=True)
@click.option("--chunk-mib", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--wait", is_flag=True, help="Wait until the dataset is active.")
@_url_option
@_token_option
def upload(
    path: Path,
    name: str,
    organization: str,
    voxel_size: tuple[float, ...] | None,
    unit: str,
    layer_name: str | None,
    category: str | None,
    folder: int | None,
    teams: tuple[str, ...],
    data_format: str | None,
    dtype: str | None,
    shape: tuple[float, ...] | None,
    raw_order: str,
    header_bytes: int,
    chunk_mib: int,
    wait: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Upload PATH (a dataset folder, a zip, a TIFF stack...) as a dataset.

    Resumable: after an interruption run the same command again."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from voxelhub.client import UploadFailed, UploadProgress, VoxelhubError

    raw = None
    if dtype or shape:
        if not (dtype and shape):
            raise click.UsageError("a raw file needs both --dtype and --shape")
        raw = {
            "dtype": dtype,
            "shape": [int(v) for v in shape],
            "order": raw_order,
            "header_bytes": header_bytes,
        }
    client = _client(url, token)
    bar = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    task = bar.add_task("hashing", total=None)

    def on_progress(step: UploadProgress) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(
            task,
            description=step.stage,
            completed=step.bytes_done,
            total=step.total_bytes,
        )

    try:
        with client:
            result = client.upload(
                path,
                organization=organization,
                name=name,
                voxel_size=voxel_size,
                unit=unit,
                layer_name=layer_name,
                category=category,
                folder=folder,
                teams=teams,
                progress=on_progress,
                wait=wait,
                chunk_size=chunk_mib * 2**20,
                data_format=data_format,
                raw=raw,
            )
    except (VoxelhubError, UploadFailed, OSError, ValueError, TimeoutError) as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        raise click.ClickException(
            "interrupted: run the same command again to resume"
        ) from None
    finally:
        if bar.live.is_started:
            bar.stop()
    how = "resumed, " if result.resumed else ""
    click.echo(
        f"{organization}/{name}: {result.outcome} ({how}{result.chunks_sent} chunks "
        f"sent, {result.chunks_skipped} already stored; upload {result.upload_id})"
    )
    if result.dataset is not None:
        click.echo(f"{organization}/{name}: {result.dataset['status']}")


@main.group()
def datasets() -> None:
    """Datasets on a metaserver (VOXELHUB_URL, VOXELHUB_TOKEN)."""


@datasets.command("list")
@click.option("--organization")
@click.option("-q", "query", help="Text search.")
@click.option("--tag", "tags", multiple=True)
@click.option("--folder", type=click.IntRange(1))
@_url_option
@_token_option
def datasets_list(
    organization: str | None,
    query: str | None,
    tags: tuple[str, ...],
    folder: int | None,
    url: str | None,
    token: str | None,
) -> None:
    """A table of the datasets you may see."""
    from rich.console import Console
    from rich.table import Table

    from voxelhub.client import VoxelhubError

    table = Table("organization", "name", "status", "layers", "tags", "folder")
    try:
        with _client(url, token) as client:
            for ds in client.datasets(organization, query, tags or None, folder):
                layers = (ds.get("datasource") or {}).get("dataLayers") or []
                table.add_row(
                    ds["organization"],
                    ds["name"],
                    ds["status"],
                    ", ".join(layer.get("name", "?") for layer in layers),
                    ", ".join(map(str, ds.get("tags") or [])),
                    str(ds.get("folder") or ""),
                )
    except VoxelhubError as e:
        raise click.ClickException(str(e)) from None
    Console().print(table)


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
