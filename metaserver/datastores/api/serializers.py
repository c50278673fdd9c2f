"""Serializers of datastores: what people see, and the bodies datastores send."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from metaserver.accounts.models import name_validator
from metaserver.datastores.actions import MIN_KEY_LENGTH
from metaserver.datastores.models import DataStore, http_url_validator


def _url(value: str) -> str:
    try:
        http_url_validator(value)
    except DjangoValidationError as e:
        raise serializers.ValidationError(e.messages) from None
    return value.rstrip("/")


class UrlField(serializers.CharField):
    """An http(s) URL; hosts without a dot (cluster names) are fine."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 500)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        return _url(value) if value else value


class DataStoreSerializer(serializers.ModelSerializer):
    """A datastore as administrators see it; never its key or tokens."""

    url = UrlField()
    public_url = UrlField(required=False, allow_blank=True)
    is_reachable = serializers.BooleanField(read_only=True)

    class Meta:
        model = DataStore
        fields = (
            "name",
            "url",
            "public_url",
            "allows_upload",
            "is_reachable",
            "last_heartbeat",
            "version",
            "created",
        )
        read_only_fields = ("name", "last_heartbeat", "version", "created")


class DataStoreCreateSerializer(serializers.Serializer):
    """Body of POST /api/datastores/: `key` may be given, else one is generated."""

    name = serializers.CharField(max_length=128, validators=[name_validator])
    url = UrlField()
    public_url = UrlField(required=False, allow_blank=True, default="")
    allows_upload = serializers.BooleanField(required=False, default=True)
    key = serializers.CharField(
        required=False, write_only=True, min_length=MIN_KEY_LENGTH, max_length=200
    )

    def validate_name(self, value: str) -> str:
        if DataStore.objects.filter(name=value).exists():
            raise serializers.ValidationError(f"datastore {value!r} exists already")
        return value


class DataStoreCreatedSerializer(DataStoreSerializer):
    """The answer to a creation: the datastore and, this once, its key."""

    key = serializers.CharField(read_only=True)

    class Meta(DataStoreSerializer.Meta):
        fields = (*DataStoreSerializer.Meta.fields, "key")


class RegisterSerializer(serializers.Serializer):
    """Body of `POST /api/datastores/{name}/register` (shared.protocol)."""

    url = UrlField()
    public_url = UrlField(required=False, allow_blank=True, allow_null=True, default="")
    allows_upload = serializers.BooleanField()
    version = serializers.CharField(
        required=False, allow_blank=True, max_length=64, default=""
    )


class RegisteredSerializer(serializers.Serializer):
    name = serializers.CharField()
    metaserver_token = serializers.CharField()


class OkSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
