"""Create the role groups: sales, reviewer (legal/compliance), manager."""

from django.db import migrations

ROLES = {
    "sales": ["view_customer", "view_recommendation", "view_product"],
    "reviewer": ["view_customer", "view_recommendation", "view_product", "view_explanation",
                 "change_explanation", "view_concept"],
    "manager": ["view_customer", "view_recommendation", "view_product", "view_explanation", "view_importrun",
                "view_concept", "view_job"],
}  # fmt: skip


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; make sure they exist for the groups now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*Permission.objects.filter(codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("recommendations", "0002_initial"),
        ("explanations", "0003_confidence_calibration"),
        ("jobs", "0001_initial"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
