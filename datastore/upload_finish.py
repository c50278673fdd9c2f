"""Finishing, cancelling and cleaning up uploads (see `datastore.upload` for the
layout on disk).

Finish, once every chunk is stored (else 409 listing what is missing):
1. tell the metaserver the upload is finishing (it refuses a cancelled one, and
   refuses cancelling from now on); unreachable → 503, nothing changed;
2. check every file's SHA-256 against the reservation; a mismatch forgets that
   file's chunks (they can be sent again) and answers 400 naming the files;
3. build `staging/` and find the dataset in it (`datastore.upload_staging`): a
   dataset is checked like a scan would and renamed into
   `binaryData/<org>/<name>` (atomic, same file system) → "imported". Anything
   else → "conversion_needed": the metaserver answers a job id and
   `start_conversion` queues the converter (`datastore.convert`);
5. report the outcome; an unreachable metaserver gets it again later.

Archive and data problems fail the upload for good (its data are removed, the
reason stays); a node killed while finishing resets the upload to `reserved` at
its next start, so the client simply finishes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from datastore.background import MetaserverLink
from datastore.config import DatastoreSettings
from datastore.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from datastore.inbox import PROPERTIES_FILE, Inbox
from datastore.metaserver_client import MetaserverRejected, MetaserverUnavailable
from datastore.upload import STAGING_DIR, UploadStore, check_upload_token
from datastore.upload_archive import ArchiveLimits
from datastore.upload_staging import (
    Prepared,
    UploadFailed,
    move_into_place,
    prepare,
    remove_staging,
    verify_files,
)
from datastore.upload_state import Upload, UploadState, token_matches
from datastore.worker import Actors
from shared.datasource import dump_datasource, load_datasource
from shared.uploads import UPLOAD_FINISHED_PATH

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ConversionRequest:
    """What the converter needs for an upload that is not a dataset yet."""

    input_path: Path
    target: Path
    organization: str
    name: str
    voxel_size: tuple[float, float, float] | None
    unit: str
    layer_hints: tuple[dict[str, str], ...]
    job_id: str
    data_format: str | None = None
    raw: dict[str, Any] | None = None


def _single_file(folder: Path) -> bool:
    try:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
    except OSError:
        return False
    return len(entries) == 1 and entries[0].is_file()


def start_conversion(actors: Actors, request: ConversionRequest) -> None:
    """Queue the conversion job on this node's dramatiq queue (`datastore.convert`)."""
    options: dict[str, Any] = {"unit": request.unit}
    if request.voxel_size is not None:
        options["voxel_size"] = list(request.voxel_size)
    if request.data_format is not None:
        options["data_format"] = request.data_format
    if request.raw is not None:  # dtype, shape, order, header_bytes
        options.update(request.raw)
    if len(request.layer_hints) == 1:  # the converter takes one name and category
        hint = request.layer_hints[0]
        if hint.get("name"):
            options["layer_name"] = hint["name"]
        if hint.get("category"):
            options["category"] = hint["category"]
    if "layer_name" not in options and _single_file(request.input_path):
        # The converter names a layer after its folder, here the upload's staging
        # folder; one uploaded file is one layer, named by its category.
        segmentation = options.get("category") == "segmentation"
        options["layer_name"] = "segmentation" if segmentation else "color"
    actors.conversion.start(request.job_id, request.input_path, request.target, options)


def _body(
    status: str, reason: str = "", datasource: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A report to the metaserver's `.../uploads/{id}/finished`."""
    return {"status": status, "reason": reason, "datasource": datasource}


def _forget(task: asyncio.Task[Any]) -> None:
    # The caller may have hung up: the outcome is in the state file and the log.
    if not task.cancelled():
        task.exception()


class Finisher:
    """Finish, cancel and housekeeping of this node's uploads."""

    def __init__(
        self,
        store: UploadStore,
        inbox: Inbox,
        executor: Executor,
        link: MetaserverLink,
        settings: DatastoreSettings,
        starter: Callable[[ConversionRequest], None],
    ) -> None:
        self.store = store
        self.inbox = inbox
        self.executor = executor
        self.link = link
        self.settings = settings
        self.start_conversion = starter
        self.limits = ArchiveLimits(
            max_total_bytes=settings.upload_max_unpacked_bytes,
            max_ratio=settings.upload_max_compression_ratio,
        )
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _run(self, work: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    # -- reports to the metaserver ------------------------------------------------

    async def _send(self, upload: Upload, body: dict[str, Any]) -> dict[str, Any]:
        path = UPLOAD_FINISHED_PATH.replace("{upload_id}", upload.upload_id)
        # The client's signed POST (registering first if needed) is what we need.
        return await self.link.client._post(path, body)

    async def _report(
        self, upload: Upload, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Send an outcome; kept in the state file and sent again if unreachable."""
        try:
            answer = await self._send(upload, body)
        except MetaserverUnavailable as e:
            logger.warning("upload %s: report postponed (%s)", upload.upload_id, e)
            upload.pending_report = body
            await self._run(lambda: self.store.save(upload))
            return None
        except MetaserverRejected as e:
            logger.error(
                "upload %s: metaserver refused %s: %s",
                upload.upload_id,
                body["status"],
                e,
            )
            answer = {"refused": e.status}
        if upload.pending_report is not None:
            upload.pending_report = None
            await self._run(lambda: self.store.save(upload))
        return answer

    # -- finish ---------------------------------------------------------------------

    async def finish(self, upload_id: str, token: str | None) -> dict[str, Any]:
        upload = check_upload_token(
            await self._run(lambda: self.store.load(upload_id)), token
        )
        if upload_id in self.store.finishing:
            raise Conflict("a finish of this upload is running already")
        if upload.state is not UploadState.RESERVED:
            raise Conflict(
                f"the upload is {upload.state.value}", {"message": upload.message}
            )
        self.store.finishing.add(upload_id)
        # A task of its own: a client hanging up must not stop a finish halfway.
        task = asyncio.create_task(self._finish(upload))
        self._tasks.add(task)
        task.add_done_callback(_forget)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _finish(self, upload: Upload) -> dict[str, Any]:
        try:
            missing = await self._run(lambda: self.store.missing_chunks(upload))
            if missing:
                raise Conflict(
                    "not every chunk has arrived",
                    {"incomplete_files": len(missing), "files": missing[:100]},
                )
            await self._announce(upload)
            upload.state, upload.message = UploadState.FINISHING, ""
            await self._run(lambda: self.store.save(upload))
            try:
                return await self._complete(upload)
            except UploadFailed as e:
                await self._fail(upload, e.reason)
                raise BadRequest(e.reason, e.detail) from None
            except (Conflict, BadRequest):
                raise
            except Exception:
                logger.exception("finishing upload %s failed", upload.upload_id)
                await self._back_to_reserved(
                    upload, "finishing failed (internal error)"
                )
                raise
        finally:
            self.store.finishing.discard(upload.upload_id)

    async def _announce(self, upload: Upload) -> None:
        try:
            await self._send(upload, _body("finishing"))
        except MetaserverUnavailable:
            raise ServiceUnavailable(
                "metaserver unreachable; finish again later"
            ) from None
        except MetaserverRejected as e:
            if e.status not in (404, 409):
                raise ServiceUnavailable("metaserver refused this datastore") from None
            # Cancelled or ended over there: nothing here may become a dataset.
            await self._run(lambda: self.store.remove(upload.upload_id))
            raise Conflict("the upload was cancelled or has ended") from None

    async def _back_to_reserved(self, upload: Upload, reason: str) -> None:
        upload.state, upload.message = UploadState.RESERVED, reason
        await self._run(lambda: remove_staging(self.store, upload))
        await self._run(lambda: self.store.save(upload))
        await self._report(upload, _body("reserved", reason))

    async def _complete(self, upload: Upload) -> dict[str, Any]:
        bad = await self._run(lambda: verify_files(self.store, upload))
        if bad:
            reason = "SHA-256 mismatch; send these files again"
            await self._back_to_reserved(upload, reason)
            raise BadRequest(reason, {"files": bad})
        prepared = await self._run(lambda: prepare(self.store, upload, self.limits))
        if prepared.props is None:
            return await self._convert(upload, prepared)
        return await self._import(upload, prepared)

    async def _import(self, upload: Upload, prepared: Prepared) -> dict[str, Any]:
        async with self.inbox.exclusive():
            scanned = await self._run(
                lambda: move_into_place(self.inbox, upload, prepared.root)
            )
            self.inbox.set_dataset(scanned.key, scanned)
        datasource = (
            None if scanned.datasource is None else dump_datasource(scanned.datasource)
        )
        upload.state, upload.message = UploadState.DONE, ""
        await self._run(lambda: self.store.save(upload))
        logger.info(
            "upload %s imported as %s/%s",
            upload.upload_id,
            upload.organization,
            upload.name,
        )
        answer = await self._report(upload, _body("imported", datasource=datasource))
        if answer is not None:
            await self._run(lambda: self.store.remove(upload.upload_id))
        self.link.request_report()
        return {
            "upload_id": upload.upload_id,
            "state": "done",
            "outcome": "imported",
            "dataset": f"{upload.organization}/{upload.name}",
            "status": scanned.status.value,
        }

    async def _convert(self, upload: Upload, prepared: Prepared) -> dict[str, Any]:
        target = self.inbox.binary_data / upload.organization / upload.name
        if await self._run(lambda: os.path.lexists(target)):
            raise UploadFailed(
                f"a dataset {upload.organization}/{upload.name} exists already"
            )
        upload.state = UploadState.CONVERTING
        upload.message = prepared.why_conversion
        upload.input_path = str(
            prepared.root.relative_to(self.store.upload_dir(upload.upload_id))
        )
        await self._run(lambda: self.store.save(upload))
        body = _body("conversion_needed", prepared.why_conversion)
        answer = await self._report(upload, body)
        job_id = None if answer is None else answer.get("job_id")
        if job_id is not None:
            await self._start(upload, str(job_id))
        return {
            "upload_id": upload.upload_id,
            "state": "converting",
            "outcome": "conversion_needed",
            "dataset": f"{upload.organization}/{upload.name}",
            "job_id": job_id,
        }

    async def _start(self, upload: Upload, job_id: str) -> None:
        upload.job_id = job_id
        await self._run(lambda: self.store.save(upload))
        request = ConversionRequest(
            input_path=self.store.upload_dir(upload.upload_id)
            / (upload.input_path or STAGING_DIR),
            target=self.inbox.binary_data / upload.organization / upload.name,
            organization=upload.organization,
            name=upload.name,
            voxel_size=upload.voxel_size,
            unit=upload.unit,
            layer_hints=upload.layer_hints,
            job_id=job_id,
            data_format=upload.data_format,
            raw=upload.raw,
        )
        await self._run(lambda: self.start_conversion(request))
        logger.info("upload %s: conversion job %s queued", upload.upload_id, job_id)

    async def _fail(self, upload: Upload, reason: str) -> None:
        logger.warning("upload %s failed: %s", upload.upload_id, reason)
        upload.state, upload.message = UploadState.FAILED, reason[:2000]

        def drop_data() -> None:
            folder = self.store.upload_dir(upload.upload_id)
            for sub in ("staging", "files", "chunks"):
                shutil.rmtree(folder / sub, ignore_errors=True)
            self.store.save(upload)

        await self._run(drop_data)
        await self._report(upload, _body("failed", upload.message))

    # -- cancel -----------------------------------------------------------------------

    async def cancel(
        self, upload_id: str, token: str | None, *, by_metaserver: bool
    ) -> dict[str, Any]:
        upload = await self._run(lambda: self.store.load(upload_id))
        if upload is None:
            raise NotFound("upload not found")
        if not by_metaserver and not token_matches(upload, token):
            check_upload_token(upload, token)  # raises the right 401/403
        if upload_id in self.store.finishing:
            raise Conflict("a finish of this upload is running")
        if upload.state in (UploadState.CONVERTING, UploadState.DONE):
            raise Conflict(f"the upload has finished ({upload.state.value})")
        await self._run(lambda: self.store.remove(upload_id))
        logger.info("upload %s cancelled", upload_id)
        if not by_metaserver:
            with contextlib.suppress(MetaserverUnavailable, MetaserverRejected):
                await self._send(upload, _body("cancelled"))
        return {"upload_id": upload_id, "cancelled": True}

    # -- start and housekeeping ------------------------------------------------------

    async def recover(self) -> None:
        """At start: drop leftovers, reset finishes a killed process left halfway."""
        now = time.time()
        for upload_id, upload, mtime in await self._run(self.store.scan):
            if upload is None:
                if now - mtime > self.store.expiry_seconds:
                    await self._run(functools.partial(self.store.remove, upload_id))
                continue
            await self._run(functools.partial(self.store.remove_temporaries, upload))
            if upload.state is UploadState.FINISHING:
                await self._run(functools.partial(self._recover_finishing, upload))
            elif (
                upload.state in (UploadState.RESERVED, UploadState.FAILED)
                and upload.pending_report is None
                and now > upload.expires
            ):
                await self._run(functools.partial(self.store.remove, upload_id))
                logger.info("removed expired upload %s", upload_id)
        # Reports may wait for the metaserver: not before this node serves.
        task = asyncio.create_task(self.housekeeping())
        self._tasks.add(task)
        task.add_done_callback(_forget)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop running finishes; the next start resets them to `reserved`."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _recover_finishing(self, upload: Upload) -> None:
        staging = self.store.upload_dir(upload.upload_id) / STAGING_DIR
        target = self.inbox.binary_data / upload.organization / upload.name
        if not staging.exists() and (target / PROPERTIES_FILE).is_file():
            # Killed between the rename into place and recording it.
            props = load_datasource(target / PROPERTIES_FILE)
            upload.state = UploadState.DONE
            upload.pending_report = _body("imported", datasource=dump_datasource(props))
        else:
            shutil.rmtree(staging, ignore_errors=True)
            reason = "the datastore restarted while finishing; finish again"
            upload.state, upload.message = UploadState.RESERVED, reason
            upload.pending_report = _body("reserved", reason)
        self.store.save(upload)
        logger.warning(
            "upload %s: interrupted finish recovered as %s",
            upload.upload_id,
            upload.state,
        )

    async def housekeeping(self) -> None:
        """Send postponed reports; remove expired, finished and converted uploads."""
        now = time.time()
        for upload in self.store.active():
            if upload.upload_id in self.store.finishing:
                continue
            try:
                await self._tend(upload, now)
            except Exception:
                logger.exception("housekeeping of upload %s failed", upload.upload_id)

    async def _tend(self, upload: Upload, now: float) -> None:
        pending = upload.pending_report
        if pending is not None:
            answer = await self._report(upload, pending)
            if answer is not None and pending["status"] == "conversion_needed":
                job_id = answer.get("job_id")
                if job_id is not None:
                    await self._start(upload, str(job_id))
            if answer is None:
                return
        expired = now > upload.expires
        target = self.inbox.binary_data / upload.organization / upload.name
        if upload.state is UploadState.DONE or (
            upload.state in (UploadState.RESERVED, UploadState.FAILED) and expired
        ):
            await self._run(lambda: self.store.remove(upload.upload_id))
            logger.info(
                "removed upload %s (%s)",
                upload.upload_id,
                "done" if not expired else "expired",
            )
        elif upload.state is UploadState.CONVERTING:
            converted = await self._run(lambda: (target / PROPERTIES_FILE).is_file())
            # Failed conversions keep their input a while, for a retry.
            abandoned = now > upload.expires + 6 * self.store.expiry_seconds
            if converted or abandoned:
                await self._run(lambda: self.store.remove(upload.upload_id))
                logger.info(
                    "removed the input of converted upload %s", upload.upload_id
                )
