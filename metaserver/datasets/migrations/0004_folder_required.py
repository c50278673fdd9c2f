import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("datasets", "0003_root_folders")]

    operations = [
        migrations.AlterField(
            model_name="dataset",
            name="folder",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="datasets",
                to="datasets.folder",
            ),
        ),
    ]
