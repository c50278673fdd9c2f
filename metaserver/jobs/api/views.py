"""`/api/jobs/`: the jobs people see and cancel; progress reports of datastores."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from metaserver.api_errors import Conflict
from metaserver.datasets.dataset_actions import do_conversion_ended
from metaserver.datastores.api.base import DatastoreOnlyView
from metaserver.jobs.access import get_job_for_user, jobs_visible_to
from metaserver.jobs.actions import (
    JobNotRunning,
    do_cancel_job,
    do_finish_job,
    do_record_progress,
)
from metaserver.jobs.api.serializers import (
    JobListQuerySerializer,
    JobProgressSerializer,
    JobSerializer,
)
from metaserver.jobs.models import Job, JobKind, JobState
from metaserver.pagination import StrictPageNumberPagination
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

JOB_ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the job's id"
)


@contextmanager
def _job_errors() -> Iterator[None]:
    """An ended job gives 409 (a worker should stop), other refusals 400."""
    try:
        yield
    except JobNotRunning as e:
        raise Conflict("; ".join(e.messages)) from None
    except DjangoValidationError as e:
        raise exceptions.ValidationError(e.messages) from None


def _with_relations(jobs: QuerySet[Job]) -> QuerySet[Job]:
    # The list's three names come joined: one query per page whatever its size.
    return jobs.select_related("organization", "owner", "datastore")


class JobViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Admins and dataset managers see every job of their organizations, others
    their own; the owner and admins cancel running jobs."""

    serializer_class = JobSerializer
    pagination_class = StrictPageNumberPagination

    def get_queryset(self) -> QuerySet[Job]:
        jobs = jobs_visible_to(self.request.user)
        query = JobListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        if "state" in query.validated_data:
            jobs = jobs.filter(state=query.validated_data["state"])
        if "organization" in query.validated_data:
            jobs = jobs.filter(organization__name=query.validated_data["organization"])
        return _with_relations(jobs).order_by("-created", "-pk")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "state",
                OpenApiTypes.STR,
                enum=JobState.values,
                description="only these",
            ),
            OpenApiParameter(
                "organization", OpenApiTypes.STR, description="an organization's name"
            ),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[JOB_ID_PARAMETER], responses=JobSerializer)
    def retrieve(self, request: Request, id: str) -> Response:
        return Response(JobSerializer(get_job_for_user(request.user, int(id))).data)

    @extend_schema(parameters=[JOB_ID_PARAMETER], request=None, responses=JobSerializer)
    def cancel(self, request: Request, id: str) -> Response:
        """Cancel a pending or started job (409 when it has ended already)."""
        job = get_job_for_user(request.user, int(id), AccessMode.ADMINISTRATE)
        with _job_errors():
            do_cancel_job(job, by=request.user)
        return Response(JobSerializer(job).data)


class JobProgressView(DatastoreOnlyView):
    """A datastore's worker reports progress of, or ends, a job of that datastore.

    The URL names the job, not the datastore: the datastore-only authentication
    checks the key (and signature) against the job's datastore, so the workers of
    any other datastore, and reports on unknown jobs, are refused alike (403).
    An ended job (for example cancelled) answers 409: the worker should stop.
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Authentication reads the datastore's name from the URL's kwargs (the same
        # dict as self.kwargs); here it comes from the job.
        name = (
            Job.objects.filter(pk=int(self.kwargs["id"]))
            .values_list("datastore__name", flat=True)
            .first()
        )
        self.kwargs["name"] = name or ""
        super().initial(request, *args, **kwargs)

    @extend_schema(
        parameters=[JOB_ID_PARAMETER],
        request=JobProgressSerializer,
        responses=JobSerializer,
    )
    def post(self, request: Request, id: str, **kwargs: Any) -> Response:
        datastore = self.datastore(request)
        job = (
            _with_relations(Job.objects.filter(datastore=datastore))
            .filter(pk=int(id))
            .first()
        )
        if job is None:
            raise exceptions.NotFound(f"job {id} not found")
        body = JobProgressSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        state = data.get("state")
        with _job_errors():
            if state in (JobState.SUCCESS, JobState.FAILURE):
                do_finish_job(job, state, data.get("message", ""), data.get("result"))
                dataset_ref = (job.arguments or {}).get("dataset")
                # A finished conversion or sample is on disk: have the node scan.
                if job.kind in (JobKind.CONVERT, JobKind.SAMPLE) and isinstance(
                    dataset_ref, str
                ):
                    do_conversion_ended(
                        dataset_ref,
                        datastore,
                        succeeded=state == JobState.SUCCESS,
                        reason=data.get("message", ""),
                    )
            else:
                do_record_progress(job, data["progress"], data.get("message"))
        return Response(JobSerializer(job).data)
