"""A TIFF stack converted by `voxelhub convert` and the official `webknossos convert`.

Generates an EM-like 1024 x 1024 x 256 uint8 stack (smooth structure plus grain,
one uncompressed TIFF per slice), then converts it with a full mag pyramid to WKW
and to Zarr3 with voxelhub (1 and 2 processes) and with the webknossos CLI of the
installed package (its default multiprocessing executor with `--jobs 2`), each as a
separate process tree. Prints wall seconds (best of `--repeat` runs), CPU seconds of
the whole tree, input MB/s, peak RSS of the whole tree (sampled every 20 ms), and
the ratios. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import tifffile

VOXEL_SIZE = "11,11,11"


def make_stack(folder: Path, size: tuple[int, int, int]) -> int:
    """EM-like slices: smooth structure at two scales plus grain; returns bytes."""
    sx, sy, sz = size
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    coarse = rng.normal(0, 1, (sz // 16 + 2, sy // 16 + 2, sx // 16 + 2))
    mid = rng.normal(0, 1, (sz // 4 + 2, sy // 4 + 2, sx // 4 + 2))
    for z in range(sz):
        fz, fz4 = (z % 16) / 16, (z % 4) / 4
        c = coarse[z // 16] * (1 - fz) + coarse[z // 16 + 1] * fz
        m = mid[z // 4] * (1 - fz4) + mid[z // 4 + 1] * fz4
        image = 128 + 40 * c.repeat(16, 0).repeat(16, 1)[:sy, :sx]
        image += 15 * m.repeat(4, 0).repeat(4, 1)[:sy, :sx]
        image += rng.normal(0, 3, (sy, sx))
        tifffile.imwrite(folder / f"slice_{z}.tif", image.clip(0, 255).astype(np.uint8))
    return sx * sy * sz


@dataclass
class Run:
    tool: str
    data_format: str
    processes: int
    seconds: float
    cpu_seconds: float
    peak_rss: int
    output_bytes: int


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the tree, peak RSS of the tree) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    watched = psutil.Process(process.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(watched))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, peak


def _burn(loops: int) -> float:
    started = time.perf_counter()
    total = 0
    for i in range(loops):
        total += i * i
    return time.perf_counter() - started


def parallel_capacity(loops: int = 4_000_000) -> float:
    """How much faster two CPU-bound processes get through twice the work than
    one does once: 2.0 on an idle 2-core machine, less when others use the CPUs."""
    alone = min(_burn(loops) for _ in range(2))
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(_burn, [loops // 10] * 2)  # start-up, not measured
        both = max(pool.map(_burn, [loops] * 2))
    return 2 * alone / both


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(
    tool: str, data_format: str, processes: int, stack: Path, out: Path, repeat: int
) -> Run:
    best = (float("inf"), 0.0, 0)
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        if tool == "voxelhub":
            command = [
                sys.executable, "-m", "voxelhub.cli", "convert", str(stack), str(out),
                "--voxel-size", VOXEL_SIZE, "--format", data_format,
                "--processes", str(processes),
            ]  # fmt: skip
        else:
            command = [
                str(Path(sys.executable).with_name("webknossos")), "convert",
                str(stack), str(out), "--voxel-size", VOXEL_SIZE,
                "--data-format", data_format, "--jobs", str(processes),
            ]  # fmt: skip
        result = measure(command)
        if result[0] < best[0]:
            best = result
    return Run(tool, data_format, processes, *best, folder_bytes(out))


def _ready(process: psutil.Process, workers: int, port: int) -> bool:
    """`workers` processes of the tree are connected to the broker."""
    connected = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            if any(
                c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
                for c in member.net_connections(kind="tcp")
            ):
                connected += 1
    return connected >= workers


def run_workers(
    data_format: str,
    processes: int,
    stack: Path,
    work: Path,
    repeat: int,
    redis_url: str,
) -> Run:
    """The same conversion as a job on `processes` running `voxelhub datastore
    worker` processes (Redis), as a datastore runs it: timed from sending the job
    until the dataset is in place; worker start-up is not in the figure."""
    from urllib.parse import urlsplit

    from datastore.worker import create_broker, declare_actors

    name = f"bench-{uuid.uuid4().hex[:8]}"
    binary_data = work / f"binaryData-{name}"
    (binary_data / "bench").mkdir(parents=True)
    env = {
        **os.environ,
        "VOXELHUB_BROKER_URL": redis_url,
        "VOXELHUB_DATASTORE_NAME": name,
        "VOXELHUB_DATASTORE_KEY": "benchmark-key",
        "VOXELHUB_DATASTORE_BINARY_DATA": str(binary_data),
        # No metaserver: progress reports are dropped (no token file).
        "VOXELHUB_DATASTORE_METASERVER_URL": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-m", "voxelhub.cli", "datastore", "worker"]
    workers = subprocess.Popen(
        [*command, "--processes", str(processes), "--threads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tree = psutil.Process(workers.pid)
    broker = create_broker(redis_url)
    actors = declare_actors(broker, f"datastore.{name}")
    port = urlsplit(redis_url).port or 6379
    try:
        deadline = time.monotonic() + 120
        while not _ready(tree, processes, port):
            if time.monotonic() > deadline or workers.poll() is not None:
                raise SystemExit("the worker processes did not start")
            time.sleep(0.1)
        time.sleep(1.0)  # imports finished, consumers polling
        best = (float("inf"), 0.0, 0)
        out = binary_data / "bench" / "converted"
        for attempt in range(repeat):
            shutil.rmtree(out, ignore_errors=True)
            cpu_before = _tree_cpu(tree)
            peak = 0
            started = time.perf_counter()
            actors.conversion.start(
                f"bench-{attempt}",
                stack,
                out,
                {"voxel_size": [float(v) for v in VOXEL_SIZE.split(",")],
                 "data_format": data_format},
            )  # fmt: skip
            while not (out / "datasource-properties.json").exists():
                peak = max(peak, _tree_rss(tree))
                if time.perf_counter() - started > 1800:
                    raise SystemExit("the conversion job did not finish")
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            result = (seconds, _tree_cpu(tree) - cpu_before, peak)
            if result[0] < best[0]:
                best = result
        return Run("voxelhub-workers", data_format, processes, *best, folder_bytes(out))
    finally:
        workers.terminate()  # SIGTERM: the worker processes stop gracefully
        workers.wait(60)
        broker.flush_all()
        broker.close()
        shutil.rmtree(binary_data, ignore_errors=True)


def _tree_cpu(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def check_same_mag1(a: Path, b: Path) -> None:
    """Mag 1 of both results holds the same voxels (a few boxes)."""
    import webknossos as wk

    left = next(iter(wk.Dataset.open(a).layers.values())).get_mag(1)
    right = next(iter(wk.Dataset.open(b).layers.values())).get_mag(1)
    rng = np.random.default_rng(0)
    box = left.bounding_box
    for _ in range(4):
        offset = [int(rng.integers(0, max(s - 64, 1))) for s in box.size]
        size = [min(64, s) for s in box.size]
        np.testing.assert_array_equal(
            left.read(absolute_offset=offset, size=size),
            right.read(absolute_offset=offset, size=size),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1024,1024,256", help="x,y,z")
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs")
    parser.add_argument("--formats", default="wkw,zarr3")
    parser.add_argument("--no-webknossos", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--workers",
        action="store_true",
        help="also run each conversion as a job on 1 and 2 `voxelhub datastore "
        "worker` processes (Redis at VOXELHUB_BENCH_REDIS_URL)",
    )
    args = parser.parse_args()
    redis_url = os.environ.get("VOXELHUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
    size = tuple(int(v) for v in args.size.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="voxelhub-bench-convert-"))
    try:
        stack = work / "stack"
        print(f"generating a {size[0]}x{size[1]}x{size[2]} uint8 TIFF stack in {work}")
        input_bytes = make_stack(stack, size)  # type: ignore[arg-type]
        print(
            f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        )
        capacity = [parallel_capacity()]
        runs: list[Run] = []
        for data_format in args.formats.split(","):
            plan = [("voxelhub", 1), ("voxelhub", 2)]
            if not args.no_webknossos:
                plan.append(("webknossos", 2))
            for tool, processes in plan:
                out = work / f"{tool}-{data_format}-{processes}"
                result = run(tool, data_format, processes, stack, out, args.repeat)
                runs.append(result)
                print(
                    f"  {tool:10} {data_format:5} x{processes}: "
                    f"{result.seconds:6.2f} s",
                    flush=True,
                )
            if args.workers:
                for processes in (1, 2):
                    result = run_workers(
                        data_format, processes, stack, work, args.repeat, redis_url
                    )
                    runs.append(result)
                    print(
                        f"  {'workers':10} {data_format:5} x{processes}: "
                        f"{result.seconds:6.2f} s",
                        flush=True,
                    )
            if not args.no_webknossos:
                check_same_mag1(
                    work / f"voxelhub-{data_format}-2",
                    work / f"webknossos-{data_format}-2",
                )
        capacity.append(parallel_capacity())
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(
            "parallel capacity (2 CPU-bound processes vs 1; 2.0 = two idle cores): "
            f"{capacity[0]:.2f} before, {capacity[1]:.2f} after"
        )
        print()
        print(
            "| tool | format | processes | seconds | CPU s | MB/s | peak RSS MiB "
            "| output MiB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in runs:
            print(
                f"| {r.tool} | {r.data_format} | {r.processes} | {r.seconds:.2f} "
                f"| {r.cpu_seconds:.1f} | {input_bytes / r.seconds / 1e6:.0f} "
                f"| {r.peak_rss / 2**20:.0f} | {r.output_bytes / 2**20:.0f} |"
            )
        print()
        for data_format in args.formats.split(","):
            by = {
                (r.tool, r.processes): r for r in runs if r.data_format == data_format
            }
            one, two = by[("voxelhub", 1)], by[("voxelhub", 2)]
            speedup = one.seconds / two.seconds
            line = (
                f"{data_format}: speed-up 1 -> 2 processes {speedup:.2f}x "
                f"({speedup / min(capacity):.0%} of the machine's capacity)"
            )
            if ("webknossos", 2) in by:
                wk_run = by[("webknossos", 2)]
                line += (
                    f"; webknossos / voxelhub: {wk_run.seconds / two.seconds:.1f}x "
                    f"(2 processes), {wk_run.seconds / one.seconds:.1f}x (1 process)"
                )
            peak = max(one.peak_rss, two.peak_rss) / 2**20
            line += f"; voxelhub peak RSS {peak:.0f} MiB"
            print(line)
            if ("voxelhub-workers", 2) in by:
                w1, w2 = by[("voxelhub-workers", 1)], by[("voxelhub-workers", 2)]
                print(
                    f"{data_format}: job on worker processes, speed-up 1 -> 2 "
                    f"{w1.seconds / w2.seconds:.2f}x; peak RSS "
                    f"{max(w1.peak_rss, w2.peak_rss) / 2**20:.0f} MiB"
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
