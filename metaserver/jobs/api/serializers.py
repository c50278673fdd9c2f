"""Serializers of jobs: what people see, and the progress reports of datastores."""

from __future__ import annotations

import math
from typing import Any

from rest_framework import serializers

from metaserver.accounts.api.serializers import StrictInputSerializer
from metaserver.accounts.models import name_validator
from metaserver.api_fields import StrictCharField
from metaserver.jobs.actions import MAX_MESSAGE_CHARS
from metaserver.jobs.models import Job, JobState

STATE_ERRORS = {
    "invalid_choice": "unknown state {input!r}; use one of "
    + ", ".join(JobState.values)
}
# The states a datastore may report: started with progress, or the end.
REPORTED_STATES = (JobState.STARTED, JobState.SUCCESS, JobState.FAILURE)


class JobSerializer(serializers.ModelSerializer):
    """A job; expects `organization`, `owner` and `datastore` selected along."""

    organization = serializers.CharField(source="organization.name", read_only=True)
    owner = serializers.CharField(
        source="owner.username", read_only=True, allow_null=True, default=None
    )
    datastore = serializers.CharField(
        source="datastore.name", read_only=True, allow_null=True, default=None
    )
    arguments = serializers.JSONField(read_only=True)
    result = serializers.JSONField(read_only=True)

    class Meta:
        model = Job
        fields = (
            "id",
            "organization",
            "owner",
            "kind",
            "datastore",
            "arguments",
            "state",
            "progress",
            "message",
            "result",
            "created",
            "started",
            "finished",
        )
        read_only_fields = fields


class JobListQuerySerializer(serializers.Serializer):
    """`?state=` and `?organization=` of the job list."""

    state = serializers.ChoiceField(
        choices=JobState.choices, required=False, error_messages=STATE_ERRORS
    )
    organization = StrictCharField(
        required=False, max_length=128, validators=[name_validator]
    )


class StrictFloatField(serializers.FloatField):
    """A JSON number and only a number: not "0.5", not true, never NaN."""

    def to_internal_value(self, data: Any) -> float:
        if (
            isinstance(data, bool)
            or not isinstance(data, (int, float))
            or not math.isfinite(data)
        ):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class JobProgressSerializer(StrictInputSerializer):
    """A worker's report: how far (`progress`, 0..1) and/or how it ended (`state`).

    `state` `success` or `failure` ends the job (`result` says what came out, e.g.
    `{"dataset": "org/name"}`); `started` or no state records progress only.
    """

    progress = StrictFloatField(required=False, min_value=0.0, max_value=1.0)
    message = StrictCharField(
        required=False, allow_blank=True, max_length=MAX_MESSAGE_CHARS
    )
    state = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in REPORTED_STATES],
        required=False,
        error_messages={
            "invalid_choice": "unknown state {input!r}; use one of "
            + ", ".join(REPORTED_STATES)
        },
    )
    result = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        ends = attrs.get("state") in (JobState.SUCCESS, JobState.FAILURE)
        if not ends and "progress" not in attrs:
            raise serializers.ValidationError(
                {"progress": ["needed unless state is success or failure"]}
            )
        if "result" in attrs and not ends:
            raise serializers.ValidationError(
                {"result": ["only with state success or failure"]}
            )
        return attrs
