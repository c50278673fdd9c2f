from django.db import migrations


def create_root_folders(apps, schema_editor):
    Organization = apps.get_model("accounts", "Organization")
    Folder = apps.get_model("datasets", "Folder")
    FolderClosure = apps.get_model("datasets", "FolderClosure")
    Dataset = apps.get_model("datasets", "Dataset")
    for organization in Organization.objects.all():
        root, _ = Folder.objects.get_or_create(
            organization=organization,
            parent=None,
            defaults={"name": organization.display_name or organization.name},
        )
        FolderClosure.objects.get_or_create(ancestor=root, descendant=root, depth=0)
        Dataset.objects.filter(organization=organization, folder=None).update(
            folder=root
        )


class Migration(migrations.Migration):
    dependencies = [("datasets", "0002_folders_tags_sharing")]

    operations = [migrations.RunPython(create_root_folders, migrations.RunPython.noop)]
