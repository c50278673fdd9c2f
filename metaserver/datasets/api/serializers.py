"""Serializers of datasets, folders, tags and of the datastore-facing dataset calls."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as DRFValidationError

from metaserver.accounts.models import Team
from metaserver.api_fields import StrictCharField
from metaserver.datasets.dataset_actions import clean_tag_names
from metaserver.datasets.markdown import MAX_DESCRIPTION_CHARS, render_markdown
from metaserver.datasets.models import TAG_NAME_MAX_CHARS, Dataset, Status
from metaserver.datasets.view_configuration import view_configuration_problems
from shared.datasource import DatasourceError, parse_datasource
from shared.protocol import NAME_PATTERN, AccessMode

# `?ordering=` values of the dataset list; "-" sorts descending.
DATASET_ORDERINGS = (
    "name",
    "-name",
    "display_name",
    "-display_name",
    "created",
    "-created",
    "updated",
    "-updated",
    "status",
    "-status",
)
DATASET_PREFETCH = ("tags", "allowed_teams")


class DatastoreRefSerializer(serializers.Serializer):
    """Where a dataset's data is served: the datastore's public URL."""

    name = serializers.CharField()
    url = serializers.CharField(source="effective_public_url")


class AllowedTeamSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class DatasetSerializer(serializers.ModelSerializer):
    """A dataset in the API; `datasource` keeps its WEBKNOSSOS camelCase.

    Tags and teams come from prefetches (`DATASET_PREFETCH`), so a page of any
    size costs the same queries.
    """

    organization = serializers.CharField(source="organization.name", read_only=True)
    datastore = DatastoreRefSerializer(read_only=True)
    datasource = serializers.JSONField(read_only=True, allow_null=True)
    pending_datasource = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="a changed datasource-properties.json found on disk, not applied",
    )
    default_view_configuration = serializers.JSONField(read_only=True, allow_null=True)
    folder = serializers.IntegerField(source="folder_id", read_only=True)
    tags = serializers.SerializerMethodField()
    allowed_teams = serializers.SerializerMethodField()
    description_html = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = (
            "name",
            "organization",
            "display_name",
            "description",
            "description_html",
            "status",
            "status_reason",
            "datastore",
            "datasource",
            "pending_datasource",
            "folder",
            "tags",
            "allowed_teams",
            "is_public",
            "is_remote",
            "default_view_configuration",
            "created",
            "updated",
            "last_used",
        )
        read_only_fields = fields

    def get_tags(self, dataset: Dataset) -> list[str]:
        return sorted(tag.name for tag in dataset.tags.all())

    @extend_schema_field(AllowedTeamSerializer(many=True))
    def get_allowed_teams(self, dataset: Dataset) -> list[dict[str, Any]]:
        teams = sorted(dataset.allowed_teams.all(), key=lambda team: team.name)
        return [{"id": team.pk, "name": team.name} for team in teams]

    def get_description_html(self, dataset: Dataset) -> str:
        return render_markdown(dataset.description)


class DatasetListItemSerializer(DatasetSerializer):
    """A dataset in a listing: everything but the rendered description (per page
    of 100 rows, Markdown rendering costs more than the queries). The listing
    builds these rows itself (`list_rows`); this is their schema."""

    class Meta(DatasetSerializer.Meta):
        fields = tuple(
            f for f in DatasetSerializer.Meta.fields if f != "description_html"
        )
        read_only_fields = fields


def layer_names(datasource: Any) -> list[str] | None:
    """Names of the layers of a datasource dict, None when it has no layer list."""
    if not isinstance(datasource, dict):
        return None
    layers = datasource.get("dataLayers")
    if not isinstance(layers, list):
        return None
    return [
        layer["name"] for layer in layers if isinstance(layer, dict) and "name" in layer
    ]


class DatasetUpdateSerializer(serializers.Serializer):
    """Body of `PATCH /api/datasets/{org}/{name}/`: every field optional.

    Unknown fields are refused (a typo must not look like success). Teams must
    belong to the dataset's organization; the datasource is checked by
    `shared.datasource` and then by the datastore that writes it. The folder is
    checked by the view (it needs the caller).
    """

    display_name = StrictCharField(max_length=255, allow_blank=True, required=False)
    description = StrictCharField(
        max_length=MAX_DESCRIPTION_CHARS,
        allow_blank=True,
        required=False,
        trim_whitespace=False,
    )
    is_public = serializers.BooleanField(required=False)
    allowed_teams = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=1000, required=False
    )
    folder = serializers.IntegerField(min_value=1, required=False)
    tags = serializers.ListField(
        child=serializers.JSONField(), max_length=1000, required=False
    )
    default_view_configuration = serializers.JSONField(required=False, allow_null=True)
    datasource = serializers.JSONField(required=False)

    def __init__(
        self, *args: Any, dataset: Dataset | None = None, **kwargs: Any
    ) -> None:
        # No dataset only when drf-spectacular builds the schema.
        super().__init__(*args, **kwargs)
        self.dataset = dataset if dataset is not None else Dataset()

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["the body must be a JSON object"]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {str(key)[:100]: ["unknown field"] for key in unknown[:20]}
            )
        if "is_public" in data and not isinstance(data["is_public"], bool):
            raise serializers.ValidationError({"is_public": ["must be true or false"]})
        return super().to_internal_value(data)

    def validate_allowed_teams(self, value: list[int]) -> list[Team]:
        teams = list(
            Team.objects.filter(
                pk__in=value, organization_id=self.dataset.organization_id
            )
        )
        missing = sorted(set(value) - {team.pk for team in teams})
        if missing:
            raise serializers.ValidationError(
                f"no such teams in {self.dataset.organization.name}: "
                + ", ".join(map(str, missing))
            )
        return teams

    def validate_tags(self, value: list[Any]) -> list[str]:
        try:
            return clean_tag_names(value)
        except DRFValidationError as e:
            detail = e.detail.get("tags") if isinstance(e.detail, dict) else e.detail
            raise serializers.ValidationError(detail) from None

    def validate_default_view_configuration(self, value: Any) -> Any:
        source = self.initial_data.get("datasource", self.dataset.datasource)
        problems = view_configuration_problems(value, layer_names(source))
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate_datasource(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        try:
            parse_datasource(value)
        except DatasourceError as e:
            raise serializers.ValidationError(e.as_json()) from None
        # The id follows the dataset: the file on disk must name its own folder.
        own_id = value.get("id") if isinstance(value.get("id"), dict) else {}
        return {
            **value,
            "id": {
                **own_id,
                "name": self.dataset.name,
                "team": self.dataset.organization.name,
            },
        }


class DatasetListQuerySerializer(serializers.Serializer):
    """Query parameters of `GET /api/datasets/` (pagination is checked apart)."""

    q = serializers.CharField(required=False, max_length=200, allow_blank=True)
    organization = serializers.RegexField(NAME_PATTERN, required=False)
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    tag = serializers.ListField(
        child=serializers.CharField(max_length=TAG_NAME_MAX_CHARS, allow_blank=True),
        required=False,
        max_length=20,
    )
    folder = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    recursive = serializers.BooleanField(required=False, default=False)
    is_public = serializers.BooleanField(required=False, allow_null=True, default=None)
    ordering = serializers.ChoiceField(
        choices=DATASET_ORDERINGS, required=False, default="name"
    )


class SharingTokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    dataset = serializers.CharField()


class PendingDatasourceActionSerializer(serializers.Serializer):
    """Body of `POST .../pending-datasource/`: take the disk's version or keep ours."""

    action = serializers.ChoiceField(choices=["apply", "discard"])


class MoveDatasetsSerializer(serializers.Serializer):
    """Body of `POST /api/datasets/move/`: datasets as "org/name" and a folder id."""

    datasets = serializers.ListField(
        child=serializers.RegexField(r"^[^/]{1,200}/[^/]{1,200}$"),
        min_length=1,
        max_length=1000,
    )
    folder = serializers.IntegerField(min_value=1)


class MovedSerializer(serializers.Serializer):
    moved = serializers.IntegerField()


class DeletedSerializer(serializers.Serializer):
    deleted = serializers.CharField()
    trash = serializers.CharField(allow_null=True)


class TagCountSerializer(serializers.Serializer):
    name = serializers.CharField()
    datasets = serializers.IntegerField()


class FolderSerializer(serializers.Serializer):
    """A folder as the caller sees it; `is_accessible` False means a breadcrumb."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    parent = serializers.IntegerField(source="parent_id", allow_null=True)
    organization = serializers.CharField(source="organization.name")
    is_root = serializers.BooleanField()
    is_accessible = serializers.BooleanField()
    is_editable = serializers.BooleanField()
    allowed_teams = serializers.SerializerMethodField()

    @extend_schema_field(AllowedTeamSerializer(many=True))
    def get_allowed_teams(self, folder: Any) -> list[dict[str, Any]]:
        teams = sorted(
            (p.group.team for p in folder.group_permissions.all()),
            key=lambda team: team.name,
        )
        return [{"id": team.pk, "name": team.name} for team in teams]


class FolderCreateSerializer(serializers.Serializer):
    # Checked by the action, so the message is the same for create and rename.
    name = StrictCharField(max_length=1000, trim_whitespace=False, allow_blank=True)
    parent = serializers.IntegerField(min_value=1)
    allowed_teams = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=1000, required=False
    )


class FolderUpdateSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=1000, trim_whitespace=False, allow_blank=True, required=False
    )
    parent = serializers.IntegerField(min_value=1, required=False)
    allowed_teams = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=1000, required=False
    )


class FolderQuerySerializer(serializers.Serializer):
    organization = serializers.RegexField(NAME_PATTERN, required=False)
    parent = serializers.IntegerField(min_value=1, required=False)


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
