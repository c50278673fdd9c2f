"""A job's owner gets one email when the job ends; cancelling a conversion stops
it on its datastore and leaves its dataset unusable."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core import mail
from django.db import transaction

from metaserver.accounts.models import User
from metaserver.datasets.models import Dataset, Status
from metaserver.datastores import datastore_client
from metaserver.jobs.actions import do_cancel_job, do_create_job, do_finish_job
from metaserver.jobs.models import Job, JobKind, JobState

from .world import World


@pytest.fixture(autouse=True)
def _locmem_mail(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.VOXELHUB_PUBLIC_URL = "https://voxels.example.org/"


@pytest.fixture
def stops(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Calls to the datastore's cancel route, recorded instead of sent."""
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any) -> dict[str, Any]:
        calls.append(args)
        return {"cancelled": str(args[1])}

    monkeypatch.setattr(datastore_client, "cancel_conversion", record)
    return calls


def _owner(world: World, email: str = "member@example.org") -> User:
    user = world.users["member"]
    user.email = email
    user.save(update_fields=["email"])
    return user


def _job(world: World, owner: User | None, **arguments: Any) -> Job:
    return do_create_job(
        world.lab,
        JobKind.CONVERT,
        owner=owner,
        datastore=world.datastore,
        arguments=arguments,
    )


def test_a_successful_job_mails_its_owner_with_a_link_to_the_jobs_page(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(world, _owner(world), dataset="lab/brain")
    with django_capture_on_commit_callbacks(execute=True):
        do_finish_job(job, JobState.SUCCESS, result={"dataset": "lab/brain"})
    [message] = mail.outbox
    assert message.to == ["member@example.org"]
    assert "succeeded" in message.subject
    assert "lab/brain" in message.subject
    assert "https://voxels.example.org/jobs/" in message.body
    assert "Conversion" in message.subject


def test_a_failed_job_mails_its_owner_the_reason(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(world, _owner(world), dataset="lab/brain")
    with django_capture_on_commit_callbacks(execute=True):
        do_finish_job(job, JobState.FAILURE, "stack.tif: not a TIFF file")
    [message] = mail.outbox
    assert "failed" in message.subject
    assert "stack.tif: not a TIFF file" in message.body


def test_a_cancelled_job_mails_its_owner(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    job = do_create_job(world.lab, JobKind.SAMPLE, owner=_owner(world))
    with django_capture_on_commit_callbacks(execute=True):
        do_cancel_job(job, by=world.users["admin"])
    [message] = mail.outbox
    assert message.to == ["member@example.org"]
    assert "cancelled" in message.subject
    assert "Cancelled by admin." in message.body


def test_no_mail_without_an_owner_or_without_an_email_address(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    orphan = _job(world, None)
    no_address = _job(world, _owner(world, email=""))
    with django_capture_on_commit_callbacks(execute=True):
        do_finish_job(orphan, JobState.SUCCESS)
        do_cancel_job(no_address)
    assert mail.outbox == []


def test_a_rolled_back_ending_mails_nobody(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(world, _owner(world))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                do_finish_job(job, JobState.SUCCESS)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert mail.outbox == []
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING


def test_a_failing_mail_server_is_logged_not_raised(
    world: World,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError("connection refused")

    monkeypatch.setattr("metaserver.jobs.emails.send_mail", broken)
    job = _job(world, _owner(world))
    with django_capture_on_commit_callbacks(execute=True):
        do_finish_job(job, JobState.SUCCESS)
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCESS
    assert "cannot send the email about job" in caplog.text


def _converting(world: World, name: str) -> Dataset:
    return Dataset.objects.create(
        organization=world.lab,
        name=name,
        datastore=world.datastore,
        status=Status.CONVERTING,
    )


def test_cancelling_a_conversion_stops_it_on_its_datastore(
    world: World,
    django_capture_on_commit_callbacks: Any,
    stops: list[tuple[Any, ...]],
) -> None:
    dataset = _converting(world, "brain")
    job = _job(world, _owner(world), dataset="lab/brain")
    with django_capture_on_commit_callbacks(execute=True):
        do_cancel_job(job, by=world.users["member"])
    assert [call[1:] for call in stops] == [(job.pk, "lab", "brain")]
    assert stops[0][0].pk == world.datastore.pk
    dataset.refresh_from_db()
    assert (dataset.status, dataset.status_reason) == (
        Status.UNUSABLE,
        "conversion cancelled",
    )
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED


def test_a_cancelled_conversion_with_a_bad_dataset_name_is_not_sent_on(
    world: World,
    django_capture_on_commit_callbacks: Any,
    stops: list[tuple[Any, ...]],
) -> None:
    job = _job(world, None, dataset="lab/../etc")
    with django_capture_on_commit_callbacks(execute=True):
        do_cancel_job(job)
    assert stops == []
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED


def test_a_datastore_that_is_down_still_leaves_the_job_cancelled(
    world: World,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down(datastore: Any, *args: Any) -> dict[str, Any]:
        raise datastore_client.DatastoreUnavailable(datastore, "ConnectError")

    monkeypatch.setattr(datastore_client, "cancel_conversion", down)
    dataset = _converting(world, "brain")
    job = _job(world, None, dataset="lab/brain")
    with (
        caplog.at_level(logging.WARNING),
        django_capture_on_commit_callbacks(execute=True),
    ):
        do_cancel_job(job)
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    dataset.refresh_from_db()
    assert dataset.status == Status.UNUSABLE
    assert f"cannot stop job {job.pk} on its datastore" in caplog.text
