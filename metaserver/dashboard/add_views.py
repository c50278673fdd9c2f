"""The "Add Dataset" page: upload files from the browser, or add a sample dataset.

Only people who may create datasets in the current organization (superusers,
admins, dataset managers) see the page. The Upload tab is plain JavaScript
(`add_dataset.js`) driving the upload protocol (`POST /api/uploads/`, chunks to
the datastore, finish). The Sample tab posts here: a `sample` job is created, the
datastore is asked to write the sample (`datastore_client.add_sample`), and the
job is finished with the datastore's answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Final

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST, require_safe

from metaserver.accounts.access import user_can_manage_datasets
from metaserver.accounts.models import Organization, Team
from metaserver.dashboard.organizations import current_organization, layout_context
from metaserver.dashboard.views import HtmxRequest, login_required
from metaserver.datasets.models import Dataset, Folder
from metaserver.datastores.datastore_client import (
    DatastoreRejected,
    DatastoreUnavailable,
    add_sample,
)
from metaserver.datastores.models import DataStore
from metaserver.jobs.actions import do_create_job, do_finish_job
from metaserver.jobs.models import JobKind, JobState
from shared.datasource import LENGTH_UNITS
from shared.protocol import NAME_PATTERN
from shared.uploads import MAX_CHUNK_BYTES

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES: Final = 8 * 2**20
MIN_CHUNK_BYTES: Final = 1024
PARALLEL_CHUNKS: Final = 3
X: Final = " \N{MULTIPLICATION SIGN} "


@dataclass(frozen=True)
class Sample:
    kind: str
    title: str
    description: str
    default_name: str


SAMPLES: Final = (
    Sample(
        "em_cells",
        "EM cells: color + segmentation",
        f"EM-like tissue (128{X}128{X}64, uint8) with a matching cell "
        f"segmentation and a mag pyramid, 11.24{X}11.24{X}28 nm.",
        "sample_em_cells",
    ),
    Sample(
        "mri_blobs",
        "MRI-like volume",
        f"A smooth 3D blob phantom (96{X}96{X}96, uint16), 1 mm voxels.",
        "sample_mri_volume",
    ),
)
_SAMPLES_BY_KIND: Final = {sample.kind: sample for sample in SAMPLES}


def _organization_for_adding(request: HtmxRequest) -> Organization:
    organization = current_organization(request).current
    if organization is None or not user_can_manage_datasets(request.user, organization):
        raise PermissionDenied
    return organization


def _folder_choices(organization: Organization) -> list[tuple[int, str]]:
    """Every folder of the organization as (id, "Root / a / b"), sorted by path."""
    folders = {f.pk: f for f in Folder.objects.filter(organization=organization)}

    def label(folder: Folder) -> str:
        parts = []
        current: Folder | None = folder
        while current is not None:
            parts.append(current.name)
            current = folders.get(current.parent_id) if current.parent_id else None
        return " / ".join(reversed(parts))

    return sorted(((pk, label(f)) for pk, f in folders.items()), key=lambda c: c[1])


def _chunk_size(raw: str | None) -> int:
    try:
        size = int(raw or DEFAULT_CHUNK_BYTES)
    except ValueError:
        size = DEFAULT_CHUNK_BYTES
    return min(max(size, MIN_CHUNK_BYTES), MAX_CHUNK_BYTES)


def _datastore_for(organization: Organization) -> DataStore | None:
    used = Dataset.objects.filter(organization=organization).values("datastore_id")
    datastores = DataStore.objects.order_by("name")
    return datastores.filter(pk__in=used).first() or datastores.first()


@require_safe
@login_required
def dataset_add(request: HtmxRequest) -> HttpResponse:
    """The Upload and Sample tabs."""
    organization = _organization_for_adding(request)
    Folder.objects.root_of(organization.pk)
    tab = "sample" if request.GET.get("tab") == "sample" else "upload"
    context: dict[str, Any] = {
        **layout_context(request),
        "section": "datasets",
        "tab": tab,
        "teams": Team.objects.filter(organization=organization).order_by("name"),
        "folders": _folder_choices(organization),
        "units": LENGTH_UNITS,
        "name_pattern": NAME_PATTERN,
        "chunk_size": _chunk_size(request.GET.get("chunk_size")),
        "parallel": PARALLEL_CHUNKS,
        "samples": SAMPLES,
    }
    return render(request, "dashboard/dataset_add.html", context)


@require_POST
@login_required
def dataset_add_sample(request: HtmxRequest) -> HttpResponse:
    """Create a `sample` job, have the datastore write the sample, finish the job."""
    organization = _organization_for_adding(request)
    back = reverse("dashboard:dataset-add") + "?tab=sample"
    sample = _SAMPLES_BY_KIND.get(request.POST.get("kind", ""))
    if sample is None:
        messages.error(request, "Unknown sample dataset.")
        return HttpResponseRedirect(back)
    name = request.POST.get("name", "").strip() or sample.default_name
    if not re.fullmatch(NAME_PATTERN, name):
        messages.error(
            request,
            f"{name[:130]!r} is not a valid dataset name: letters, digits, _ . - "
            "(not first), at most 128 characters.",
        )
        return HttpResponseRedirect(back)
    if Dataset.objects.filter(organization=organization, name=name).exists():
        messages.error(
            request,
            f"A dataset named {name} exists already in {organization.name}; "
            "choose another name.",
        )
        return HttpResponseRedirect(back)
    datastore = _datastore_for(organization)
    if datastore is None:
        messages.error(request, "No datastore is registered yet.")
        return HttpResponseRedirect(back)
    job = do_create_job(
        organization,
        JobKind.SAMPLE,
        owner=request.user,
        datastore=datastore,
        arguments={
            "kind": sample.kind,
            "name": name,
            "dataset": f"{organization.name}/{name}",
        },
    )
    try:
        add_sample(datastore, organization.name, name, sample.kind, job.pk)
    except DatastoreRejected as e:
        reason = (
            f"A dataset named {name} exists already on {datastore.name}; "
            "choose another name."
            if e.status == 409
            else f"The datastore refused: {e.error}."
        )
        do_finish_job(job, JobState.FAILURE, reason)
        messages.error(request, f"Could not add the sample: {reason}")
        return HttpResponseRedirect(back)
    except DatastoreUnavailable as e:
        reason = f"{e}."
        do_finish_job(job, JobState.FAILURE, reason)
        messages.error(request, f"Could not add the sample: {reason}")
        return HttpResponseRedirect(back)
    # A worker of the datastore writes it and reports to the job; the Jobs page
    # shows it and links to the dataset when it is done.
    messages.success(
        request,
        f"Adding the sample {name}: it appears in the dataset list when its job "
        "is done.",
    )
    return HttpResponseRedirect(reverse("dashboard:jobs"))


urlpatterns = [
    path("datasets/add/", dataset_add, name="dataset-add"),
    path("datasets/add/sample/", dataset_add_sample, name="dataset-add-sample"),
]
