from django.apps import AppConfig


class DatastoresConfig(AppConfig):
    name = "metaserver.datastores"
    label = "datastores"
    default_auto_field = "django.db.models.BigAutoField"
