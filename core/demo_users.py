"""The demo's users, made in one place: the demo command and the permission-matrix test both call this.

Each user gets exactly one role group. What a user may do comes from that group's permissions (and from
``core.permissions`` roles), never from ``is_staff``. The demo's reviewers and managers are staff
because the Django admin is where they do part of their work, with their group's permissions only:
reviewers clear products held back for personal data (``recommendations.clear_pii_quarantine``) and read
customers, products and explanations; managers read import runs (with their reports of scrubbed
personal data) and jobs. Neither may change a job, an assignment or an audit row there, nor download
what their role may not (the rejected-rows CSV is for managers and admins). Sales users are not staff.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from core.permissions import MANAGER, REVIEWER, SALES


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    first_name: str
    last_name: str

    @property
    def is_staff(self) -> bool:
        return self.role in (REVIEWER, MANAGER)


DEMO_USERS = (
    DemoUser("sales", SALES, "Sam", "Sales"),
    DemoUser("sales2", SALES, "Sasha", "Sales"),
    DemoUser("reviewer", REVIEWER, "Riley", "Reviewer"),
    # A second reviewer, so that a text one of them edited can be approved by the other (four-eyes).
    DemoUser("reviewer2", REVIEWER, "Robin", "Reviewer"),
    DemoUser("manager", MANAGER, "Morgan", "Manager"),
)


@transaction.atomic
def demo_users_ensure(*, reset_passwords: bool = False) -> dict[str, str | None]:
    """Create the demo users that are missing (or bring existing ones back to their role); return passwords.

    The result maps each username to its new password, or None when it kept its password (an existing
    user, unless ``reset_passwords``). Passwords are random; they are shown once and stored hashed.
    """
    User = get_user_model()
    passwords: dict[str, str | None] = {}
    for demo in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=demo.username, defaults={"first_name": demo.first_name, "last_name": demo.last_name}
        )
        user.groups.set([Group.objects.get_or_create(name=demo.role)[0]])
        user.is_staff = demo.is_staff
        user.is_superuser = False
        password = None
        if created or reset_passwords:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
        user.save()
        passwords[demo.username] = password
    return passwords
