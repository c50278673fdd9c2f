"""Serializers of uploads: the reservation, what people see, datastore reports."""

from __future__ import annotations

import math
from typing import Any

from rest_framework import serializers

from metaserver.accounts.api.serializers import (
    StrictInputSerializer,
    TeamReferenceField,
)
from metaserver.accounts.models import name_validator
from metaserver.api_fields import StrictCharField
from metaserver.uploads import conf
from metaserver.uploads.models import Upload
from metaserver.uploads.outcomes import MAX_REASON_CHARS, REPORTED
from shared.datasource import LENGTH_UNITS
from shared.uploads import (
    CONVERSION_FORMATS,
    UploadPathError,
    check_relative_path,
    check_sha256,
    path_conflicts,
    raw_hint_problems,
)


class UploadFileSerializer(StrictInputSerializer):
    """One file: relative path, size in bytes, SHA-256 (hex)."""

    path = StrictCharField(max_length=4096, trim_whitespace=False)
    size = serializers.IntegerField(min_value=0, max_value=2**62)
    sha256 = StrictCharField(min_length=64, max_length=64)

    def validate_path(self, value: str) -> str:
        try:
            return check_relative_path(value)
        except UploadPathError as e:
            raise serializers.ValidationError(f"{value[:200]!r} {e}") from None

    def validate_sha256(self, value: str) -> str:
        try:
            return check_sha256(value)
        except ValueError as e:
            raise serializers.ValidationError(str(e)) from None


class LayerHintSerializer(StrictInputSerializer):
    """How a conversion should name and classify a layer (one per input layer)."""

    name = StrictCharField(max_length=128, validators=[name_validator])
    category = serializers.ChoiceField(
        choices=("color", "segmentation"), required=False
    )


class UploadReserveSerializer(StrictInputSerializer):
    """Body of `POST /api/uploads/`."""

    organization = StrictCharField(max_length=128)
    name = StrictCharField(max_length=128, validators=[name_validator])
    files = serializers.ListField(child=UploadFileSerializer(), min_length=1)
    folder = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    allowed_teams = serializers.ListField(
        child=TeamReferenceField(), max_length=100, required=False, default=list
    )
    voxel_size = serializers.ListField(
        child=serializers.FloatField(), min_length=3, max_length=3, required=False
    )
    unit = serializers.ChoiceField(
        choices=LENGTH_UNITS, required=False, default="nanometer"
    )
    layers = serializers.ListField(
        child=LayerHintSerializer(), max_length=100, required=False, default=list
    )
    data_format = serializers.ChoiceField(
        choices=CONVERSION_FORMATS,
        required=False,
        default="wkw",
        help_text="Output format if the upload needs a conversion (WKW by default; "
        "zarr3 writes sharded Zarr v3).",
    )
    raw = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="For a raw file: {dtype, shape: [x, y, z(, c)], order: F|C, "
        "header_bytes}; the converter reads it with this layout.",
    )
    datastore = StrictCharField(max_length=128, required=False)

    def validate_raw(self, value: Any) -> Any:
        if value is None:
            return None
        problems = raw_hint_problems(value)
        if problems:
            raise serializers.ValidationError([f"{k}: {m}" for k, m in problems])
        return value

    def validate_files(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limit = conf.max_files()
        if len(value) > limit:
            raise serializers.ValidationError(
                f"{len(value)} files; at most {limit} per upload (zip larger folders)"
            )
        problems = path_conflicts([f["path"] for f in value])
        if problems:
            raise serializers.ValidationError(problems[:20])
        return value

    def validate_voxel_size(self, value: list[float]) -> list[float]:
        if not all(math.isfinite(v) and v > 0 for v in value):
            raise serializers.ValidationError("must be 3 finite numbers > 0")
        return value


class UploadSerializer(serializers.ModelSerializer):
    """An upload as its owner and the organization's managers see it."""

    organization = serializers.CharField(source="organization.name", read_only=True)
    user = serializers.CharField(
        source="user.username", read_only=True, allow_null=True, default=None
    )
    datastore = serializers.CharField(
        source="datastore.name", read_only=True, allow_null=True, default=None
    )
    datastore_url = serializers.SerializerMethodField()
    allowed_teams = serializers.SerializerMethodField()
    # A plain string in the schema: an enum would collide with the jobs' `state`.
    state = serializers.CharField(
        read_only=True, help_text="reserved, finishing, done, failed or cancelled"
    )
    files = serializers.JSONField(read_only=True)
    result = serializers.JSONField(read_only=True)
    voxel_size = serializers.JSONField(read_only=True)
    layer_hints = serializers.JSONField(read_only=True)
    raw = serializers.JSONField(read_only=True)

    class Meta:
        model = Upload
        fields = (
            "id",
            "organization",
            "user",
            "name",
            "folder",
            "allowed_teams",
            "datastore",
            "datastore_url",
            "state",
            "message",
            "voxel_size",
            "unit",
            "layer_hints",
            "data_format",
            "raw",
            "file_count",
            "total_size",
            "files",
            "result",
            "created",
            "updated",
            "expires",
            "finished",
        )
        read_only_fields = fields

    def get_datastore_url(self, upload: Upload) -> str | None:
        store = upload.datastore
        return None if store is None else store.effective_public_url.rstrip("/")

    def get_allowed_teams(self, upload: Upload) -> list[int]:
        return sorted(team.pk for team in upload.allowed_teams.all())


class UploadReservedSerializer(UploadSerializer):
    """The answer to a reservation: the upload and its token, shown this once."""

    upload_token = serializers.CharField(read_only=True)

    class Meta(UploadSerializer.Meta):
        fields = (*UploadSerializer.Meta.fields, "upload_token")
        read_only_fields = fields


class UploadOutcomeSerializer(StrictInputSerializer):
    """A datastore's report on an upload (`shared.uploads.UPLOAD_FINISHED_PATH`)."""

    status = serializers.ChoiceField(choices=REPORTED)
    reason = serializers.CharField(
        max_length=MAX_REASON_CHARS * 4, allow_blank=True, required=False, default=""
    )
    datasource = serializers.JSONField(required=False, allow_null=True, default=None)


class UploadOutcomeAnswerSerializer(serializers.Serializer):
    state = serializers.CharField()
    job_id = serializers.IntegerField(allow_null=True)
