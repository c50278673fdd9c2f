"""`voxelhub up`: the whole system on one machine with embedded defaults.

Runs database migrations and the first-run setup in this process, generates a sample
dataset if the organization has none, then starts the metaserver (gunicorn) and one
datastore (with its in-process job worker) as child processes and supervises them
until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ORGANIZATION = "sample_organization"
ADMIN = "admin"
DATASTORE_NAME = "localhost"


@dataclass(frozen=True)
class UpConfig:
    home: Path
    host: str = "127.0.0.1"
    metaserver_port: int = 8000
    datastore_port: int = 8080
    sample: bool = True

    @property
    def metaserver_url(self) -> str:
        return f"http://{self.host}:{self.metaserver_port}"

    @property
    def datastore_url(self) -> str:
        return f"http://{self.host}:{self.datastore_port}"


def _write_private(path: Path, text: str) -> None:
    """Write a secret file readable only by its owner, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def read_or_create_secret(home: Path) -> str:
    """The metaserver's SECRET_KEY for this home folder, created on first use."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    _write_private(path, key)
    return key


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            # Our own loopback URL, built from the config above.
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status < 500:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _prepare(config: UpConfig) -> dict[str, str]:
    """Migrate, run the first-run setup and return the child processes' environment."""
    from rich.console import Console

    console = Console(stderr=True)
    home = config.home
    for sub in ("binaryData", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    os.environ["VOXELHUB_HOME"] = str(home)
    os.environ["VOXELHUB_EMBEDDED"] = "1"
    os.environ.setdefault("VOXELHUB_SECRET_KEY", read_or_create_secret(home))
    os.environ.setdefault(
        "VOXELHUB_ALLOWED_HOSTS", f"localhost,127.0.0.1,{config.host}"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metaserver.config.settings")

    import django
    from django.core.management import call_command

    django.setup()
    with console.status("preparing the database"):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
    from metaserver.bootstrap import ensure_embedded_setup

    setup = ensure_embedded_setup(
        credentials_file=home / "credentials.json",
        organization=ORGANIZATION,
        admin_username=ADMIN,
        datastore_name=DATASTORE_NAME,
        datastore_url=config.datastore_url,
    )
    binary_data = home / "binaryData"
    org_dir = binary_data / ORGANIZATION
    has_data = org_dir.is_dir() and any(
        not p.name.startswith(".") for p in org_dir.iterdir()
    )
    if config.sample and not has_data:
        _generate_sample(binary_data)

    env = dict(os.environ)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "VOXELHUB_BROKER_URL": "",
            "VOXELHUB_DATASTORE_NAME": setup.datastore_name,
            "VOXELHUB_DATASTORE_URL": config.datastore_url,
            "VOXELHUB_DATASTORE_KEY": setup.datastore_key,
            "VOXELHUB_DATASTORE_BINARY_DATA": str(binary_data),
            "VOXELHUB_DATASTORE_METASERVER_URL": config.metaserver_url,
        }
    )
    env["_VOXELHUB_ADMIN_PASSWORD"] = setup.admin_password
    env["_VOXELHUB_API_TOKEN"] = setup.api_token
    return env


def _generate_sample(binary_data: Path) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shared.samples import write_sample_dataset

    with Progress(
        TextColumn("sample dataset: {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("starting", total=1.0)

        def report(stage: str, fraction: float) -> None:
            progress.update(task, description=stage, completed=fraction)

        write_sample_dataset(binary_data, ORGANIZATION, progress=report)


def run_up(config: UpConfig) -> int:
    """Run everything until interrupted; returns the exit code."""
    for port in (config.metaserver_port, config.datastore_port):
        if not _port_free(config.host, port):
            print(
                f"error: port {config.host}:{port} is in use "
                "(another voxelhub up? use --metaserver-port/--datastore-port)",
                file=sys.stderr,
            )
            return 2
    env = _prepare(config)
    admin_password = env.pop("_VOXELHUB_ADMIN_PASSWORD")
    api_token = env.pop("_VOXELHUB_API_TOKEN")
    logs = config.home / "logs"
    python = sys.executable
    commands = {
        "metaserver": [
            python, "-m", "gunicorn", "-c", "python:metaserver.config.gunicorn",
            "metaserver.config.wsgi:application",
            "--bind", f"{config.host}:{config.metaserver_port}",
            "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
            "--access-logfile", "-",
        ],
        "datastore": [python, "-m", "datastore"],
    }  # fmt: skip
    children: dict[str, subprocess.Popen[bytes]] = {}
    log_files = {}
    stopping = False

    def stop(_signum: int | None = None, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        for name, command in commands.items():
            log_path = logs / f"{name}.log"
            log_files[name] = open(log_path, "ab")  # noqa: SIM115 (closed in finally)
            children[name] = subprocess.Popen(
                command,
                env=env,
                stdout=log_files[name],
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop children in order
            )
        checks = {
            "metaserver": f"{config.metaserver_url}/api/schema/",
            "datastore": f"{config.datastore_url}/data/health",
        }
        for name, url in checks.items():
            if not _wait_http(url, 60, children[name]):
                print(
                    f"error: the {name} did not start; its log says:", file=sys.stderr
                )
                print(_tail(logs / f"{name}.log"), file=sys.stderr)
                return 1
        _print_banner(config, admin_password, api_token)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(
                        f"error: the {name} stopped (exit {child.returncode}); "
                        f"its log says:\n{_tail(logs / f'{name}.log')}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
        print("\nstopping...", file=sys.stderr)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for f in log_files.values():
            f.close()
    return exit_code


def _print_banner(config: UpConfig, admin_password: str, api_token: str) -> None:
    dataset_url = f"{config.metaserver_url}/api/datasets/{ORGANIZATION}/sample_dataset/"
    data_url = (
        f"{config.datastore_url}/data/datasets/{ORGANIZATION}/sample_dataset/"
        "layers/color/data?mag=1&x=0&y=0&z=128&width=256&height=256&depth=1"
    )
    print(
        f"""
voxelhub is running (Ctrl-C stops everything).

  dashboard    {config.metaserver_url}/   (log in as {ADMIN})
  metaserver   {config.metaserver_url}/api/   (admin: {config.metaserver_url}/admin/)
  datastore    {config.datastore_url}/data/health
  job worker   in-process, inside the datastore
  home         {config.home}   (logs in {config.home / "logs"})

  organization {ORGANIZATION}
  user         {ADMIN}
  password     {admin_password}
  API token    {api_token}

Try:
  curl -H 'Authorization: Token {api_token}' {dataset_url}
  curl -o slice.raw -H 'X-Auth-Token: {api_token}' '{data_url}'
""",
        flush=True,
    )
