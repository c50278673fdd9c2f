"""`POST /data/triggers/addSample?organization=&name=&kind=&job=`: queue a sample.

Only the metaserver may call it (its token from our last registration, in
`METASERVER_TOKEN_HEADER`); it has already decided that its user may add datasets
and created the `sample` job `job`. The node checks the names and that the dataset
does not exist yet (409), then queues `write_sample` on its dramatiq queue and
answers 202; a worker writes the sample (`datastore/sample_data.py`) and reports to
the job, and the metaserver has the node scan when it succeeds.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from datastore.errors import BadRequest, Conflict
from datastore.routes.common import check_name
from datastore.routes.manage import require_metaserver
from datastore.sample_data import sample_writer
from datastore.state import ACTORS, INBOX

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

_JOB_ID = re.compile(r"\d{1,19}")


@routes.post("/data/triggers/addSample")
async def add_sample(request: web.Request) -> web.Response:
    """Queue the sample's job; answer 202 `{"dataset", "status": "queued", "job"}`."""
    require_metaserver(request)
    organization = check_name(request.query.get("organization", ""), "organization")
    name = check_name(request.query.get("name", ""), "dataset")
    kind = request.query.get("kind", "")
    sample_writer(kind)  # 400 for an unknown kind
    job_id = request.query.get("job", "")
    if not _JOB_ID.fullmatch(job_id):
        raise BadRequest("job must be the id of the metaserver's sample job")
    binary_data = request.app[INBOX].binary_data
    if (binary_data / organization / name).exists():
        raise Conflict(f"a dataset {organization}/{name} exists already")
    request.app[ACTORS].sample.send(job_id, str(binary_data), organization, name, kind)
    logger.info("queued sample %s/%s (%s) as job %s", organization, name, kind, job_id)
    return web.json_response(
        {"dataset": f"{organization}/{name}", "status": "queued", "job": job_id},
        status=202,
    )
