"""Serializers of datasets and of the datastore-facing dataset calls."""

from __future__ import annotations

from rest_framework import serializers

from metaserver.api_fields import StrictCharField
from metaserver.datasets.models import Dataset, Status
from shared.protocol import NAME_PATTERN, AccessMode


class DatastoreRefSerializer(serializers.Serializer):
    """Where a dataset's data is served: the datastore's public URL."""

    name = serializers.CharField()
    url = serializers.CharField(source="effective_public_url")


class DatasetSerializer(serializers.ModelSerializer):
    """A dataset in the API; `datasource` keeps its WEBKNOSSOS camelCase."""

    organization = serializers.CharField(source="organization.name", read_only=True)
    datastore = DatastoreRefSerializer(read_only=True)
    datasource = serializers.JSONField(read_only=True, allow_null=True)
    default_view_configuration = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Dataset
        fields = (
            "name",
            "organization",
            "display_name",
            "description",
            "status",
            "status_reason",
            "datastore",
            "datasource",
            "is_public",
            "is_remote",
            "default_view_configuration",
            "created",
            "updated",
            "last_used",
        )
        read_only_fields = fields


class DatasetListQuerySerializer(serializers.Serializer):
    """Query parameters of `GET /api/datasets/` (pagination is checked apart)."""

    q = serializers.CharField(required=False, max_length=200, allow_blank=True)
    organization = serializers.RegexField(NAME_PATTERN, required=False)
    status = serializers.ChoiceField(choices=Status.choices, required=False)


class ValidateAccessSerializer(serializers.Serializer):
    """Body of `POST /api/datastores/{name}/validate-access` (shared.protocol)."""

    token = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=1000
    )
    organization = StrictCharField(max_length=200)
    dataset = StrictCharField(required=False, allow_null=True, max_length=200)
    mode = serializers.ChoiceField(choices=[m.value for m in AccessMode])


class AccessAnswerSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    cache_seconds = serializers.IntegerField()


class DatasetReportItemSerializer(serializers.Serializer):
    """Documentation of one report entry; checked by `metaserver.datasets.reports`."""

    organization = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "needs_review", "unusable"])
    reason = serializers.CharField(required=False, allow_blank=True)
    datasource = serializers.JSONField(allow_null=True)


class DatasetReportSerializer(serializers.Serializer):
    """Documentation of a report body (the OpenAPI schema); not used to validate."""

    datasets = DatasetReportItemSerializer(many=True)


class ReportAnswerSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unusable = serializers.IntegerField()
    ignored = serializers.ListField(child=serializers.CharField())
