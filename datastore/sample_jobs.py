"""The `write_sample` job: a sample dataset written by the node's workers.

The metaserver's "Add a Sample Dataset" creates a `sample` job and asks the node
(`POST /data/triggers/addSample`) to queue it; any worker of the node's queue
writes the sample (staged, renamed into place), renders its thumbnails and
reports success with the dataset's path, upon which the metaserver has the node
scan. Writing is deterministic, so a failure is reported at once, not retried.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dramatiq

from datastore.convert.actors import ConversionReporter, LoggingReporter
from datastore.sample_data import sample_writer
from datastore.thumbnail_files import pregenerate_thumbnails
from shared.conversions import ConversionCancelled

logger = logging.getLogger(__name__)


def declare_sample_actor(
    broker: dramatiq.Broker,
    queue_name: str,
    reporter: ConversionReporter | None = None,
) -> dramatiq.Actor[..., Any]:
    report: ConversionReporter = reporter or LoggingReporter()

    def write_sample(
        job_id: str, binary_data: str, organization: str, name: str, kind: str
    ) -> None:
        root = Path(binary_data)
        try:
            report.report_progress(job_id, 0, 1, f"writing {kind}")
        except ConversionCancelled:
            logger.info("job %s ended before its sample was written", job_id)
            return
        try:
            target = sample_writer(kind)(root, organization, name)
        except FileExistsError:
            report.report_failure(
                job_id, f"a dataset {organization}/{name} exists already"
            )
            return
        except Exception as e:
            logger.exception("sample %s/%s failed", organization, name)
            report.report_failure(job_id, f"writing the sample failed: {e}")
            return
        pregenerate_thumbnails(root, organization, name, target)
        report.report_success(job_id, {"path": str(target)})
        logger.info("job %s: wrote sample %s/%s", job_id, organization, name)

    return dramatiq.actor(
        broker=broker, queue_name=queue_name, actor_name="write_sample", max_retries=0
    )(write_sample)
