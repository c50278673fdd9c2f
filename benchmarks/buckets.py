"""Random 32³ bucket reads: datastore over HTTP against in-process reading.

Starts a metaserver (SQLite) and a datastore on loopback, generates a Zarr3 and a WKW
dataset, and prints buckets/s for each way of reading plus the ratios. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np

from shared.datasource import (
    Category,
    DataFormat,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
    save_datasource,
)
from shared.formats import create_mag
from shared.geometry import BoundingBox, Mag, Vec3

ORG = "bench_org"
BUCKET = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_volume(size: int) -> np.ndarray:
    """Smooth blobs plus noise: compresses like microscopy, not like white noise."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(40, 220, size=(size // 16 + 1,) * 3).astype(np.uint8)
    volume = coarse.repeat(16, 0).repeat(16, 1).repeat(16, 2)[:size, :size, :size]
    noise = rng.integers(0, 24, size=volume.shape, dtype=np.uint8)
    return volume + noise


def write_dataset(
    binary_data: Path, name: str, fmt: DataFormat, volume: np.ndarray
) -> Path:
    target = binary_data / ORG / name
    path = target / "color" / "1"
    array = create_mag(path, fmt, volume.dtype, 1, chunk_shape=32, shard_shape=1024)
    slab = 128
    for z in range(0, volume.shape[2], slab):
        array.write(Vec3(0, 0, z), volume[None, :, :, z : z + slab])
    array.close()
    layer = LayerProperties(
        name="color",
        category=Category.COLOR,
        bounding_box=BoundingBox.of(0, volume.shape),
        element_class=ElementClass.UINT8,
        data_format=fmt,
        mags=(MagProperties(mag=Mag(1, 1, 1), path="./color/1"),),
        num_channels=1,
    )
    props = DatasourceProperties(
        name=name, team=ORG, voxel_size=VoxelSize((11.0, 11.0, 11.0)), layers=(layer,)
    )
    save_datasource(target / "datasource-properties.json", props)
    return path


def random_positions(size: int, count: int, seed: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    cells = size // BUCKET
    return [
        tuple(int(v) * BUCKET for v in rng.integers(0, cells, 3)) for _ in range(count)
    ]


def in_process_zarr3(path: Path, positions: list[tuple[int, int, int]]) -> float:
    import tensorstore as ts

    array = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}},
        context=ts.Context({"cache_pool": {"total_bytes_limit": 512 << 20}}),
    ).result()
    start = time.perf_counter()
    futures = [
        array[0, x : x + BUCKET, y : y + BUCKET, z : z + BUCKET].read()
        for x, y, z in positions
    ]
    for f in futures:
        f.result()
    return len(positions) / (time.perf_counter() - start)


def in_process_wkw(path: Path, positions: list[tuple[int, int, int]]) -> float:
    import wkw

    dataset = wkw.Dataset.open(str(path))
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        start = time.perf_counter()
        list(pool.map(lambda p: dataset.read(p, (BUCKET,) * 3), positions))
        elapsed = time.perf_counter() - start
    return len(positions) / elapsed


async def http_single(
    url: str, token: str, positions: list[tuple[int, int, int]], clients: int
) -> float:
    queue = list(positions)
    headers = {"X-Auth-Token": token}

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            x, y, z = queue.pop()
            params = {
                "mag": "1",
                "x": x,
                "y": y,
                "z": z,
                "width": BUCKET,
                "height": BUCKET,
                "depth": BUCKET,
            }
            async with session.get(url, params=params, headers=headers) as r:
                body = await r.read()
                if r.status != 200 or len(body) != BUCKET**3:
                    raise RuntimeError(f"GET {r.status}: {body[:200]!r}")

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return len(positions) / (time.perf_counter() - start)


async def http_batch(
    url: str,
    token: str,
    positions: list[tuple[int, int, int]],
    clients: int,
    batch: int,
) -> float:
    batches = [positions[i : i + batch] for i in range(0, len(positions), batch)]
    headers = {"X-Auth-Token": token}

    async def client(session: aiohttp.ClientSession) -> None:
        while batches:
            chunk = batches.pop()
            body = [
                {"position": list(p), "mag": [1, 1, 1], "cubeSize": BUCKET}
                for p in chunk
            ]
            async with session.post(url, json=body, headers=headers) as r:
                data = await r.read()
                if r.status != 200 or len(data) != len(chunk) * BUCKET**3:
                    raise RuntimeError(f"POST {r.status}: {data[:200]!r}")

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return len(positions) / (time.perf_counter() - start)


def start_services(home: Path) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOXELHUB_", "DATABASE_URL"))
    }
    env.update(
        VOXELHUB_HOME=str(home),
        VOXELHUB_EMBEDDED="1",
        VOXELHUB_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="metaserver.config.settings",
    )
    python = sys.executable
    subprocess.run(
        [python, "-m", "metaserver.manage", "migrate", "-v", "0"], env=env, check=True
    )
    m_port, d_port = free_port(), free_port()
    datastore_url = f"http://127.0.0.1:{d_port}"
    out = subprocess.run(
        [python, "-c",
         "import django, json, sys; django.setup(); from pathlib import Path;"
         "from metaserver.bootstrap import ensure_embedded_setup as s;"
         "r = s(credentials_file=Path(sys.argv[1]), organization=sys.argv[2],"
         " datastore_url=sys.argv[3]);"
         "print(json.dumps([r.api_token, r.datastore_key]))",
         str(home / "credentials.json"), ORG, datastore_url],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    token, key = json.loads(out.stdout.strip().splitlines()[-1])
    ds_env = dict(env)
    ds_env.update(
        VOXELHUB_DATASTORE_NAME="localhost",
        VOXELHUB_DATASTORE_URL=datastore_url,
        VOXELHUB_DATASTORE_KEY=key,
        VOXELHUB_DATASTORE_BINARY_DATA=str(home / "binaryData"),
        VOXELHUB_DATASTORE_METASERVER_URL=f"http://127.0.0.1:{m_port}",
    )
    log = open(home / "services.log", "wb")  # noqa: SIM115 (lives as long as the children)
    procs = [
        subprocess.Popen(
            [python, "-m", "gunicorn", "metaserver.config.wsgi:application",
             "--bind", f"127.0.0.1:{m_port}", "--workers", "1", "--threads", "8"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [python, "-m", "datastore"],
            env=ds_env, stdout=log, stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{datastore_url}/data/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    scan = httpx.post(
        f"{datastore_url}/data/triggers/checkInbox",
        params={"organization": ORG},
        headers={"X-Auth-Token": token},
        timeout=120,
    )
    scan.raise_for_status()
    return procs, datastore_url, token


def measure(label: str, fn: Callable[[], float], repeats: int = 3) -> float:
    best = max(fn() for _ in range(repeats))
    print(f"  {label:<44} {best:>10.0f} buckets/s")
    return best


def bench_format(
    fmt: str, path: Path, datastore_url: str, token: str, args: argparse.Namespace
) -> None:
    positions = random_positions(args.size, args.buckets, seed=len(fmt))
    url = f"{datastore_url}/data/datasets/{ORG}/bench_{fmt}/layers/color/data"
    print(f"\n{fmt}: {args.buckets} random {BUCKET}³ buckets, {args.clients} clients")
    if fmt == "zarr3":
        reference = measure(
            "tensorstore in-process", lambda: in_process_zarr3(path, positions)
        )
    else:
        reference = measure(
            "wkw package in-process", lambda: in_process_wkw(path, positions)
        )
    single = measure(
        "HTTP GET, one bucket per request",
        lambda: asyncio.run(http_single(url, token, list(positions), args.clients)),
    )
    batch = measure(
        f"HTTP POST, {args.batch} buckets per request",
        lambda: asyncio.run(
            http_batch(url, token, list(positions), args.clients, args.batch)
        ),
    )
    print(f"  ratio HTTP single / in-process: {single / reference:6.2f}")
    print(f"  ratio HTTP batch  / in-process: {batch / reference:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--size", type=int, default=512, help="edge of the cube (voxels)"
    )
    parser.add_argument("--buckets", type=int, default=4096, help="buckets per run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="voxelhub-bench-") as tmp:
        home = Path(tmp)
        binary_data = home / "binaryData"
        print(f"generating {args.size}³ uint8 volume ...", flush=True)
        volume = make_volume(args.size)
        paths = {
            "zarr3": write_dataset(
                binary_data, "bench_zarr3", DataFormat.ZARR3, volume
            ),
            "wkw": write_dataset(binary_data, "bench_wkw", DataFormat.WKW, volume),
        }
        procs, datastore_url, token = start_services(home)
        try:
            for fmt, path in paths.items():
                bench_format(fmt, path, datastore_url, token, args)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=15)


if __name__ == "__main__":
    main()
