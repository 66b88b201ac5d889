"""The ``roles`` context processor exposes the user's roles to every template."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory

from core.context_processors import roles
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TEMPLATE = Template('{% if "manager" in user_roles %}M{% endif %}{% if "sales" in user_roles %}S{% endif %}')


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"groups": ["manager"]}, "M"),
        ({"groups": ["sales"]}, "S"),
        ({"groups": ["sales", "manager"]}, "MS"),
        ({"is_superuser": True}, "MS"),
        ({}, ""),
    ],
)
def test_user_roles_in_templates(kwargs, expected):
    request = RequestFactory().get("/")
    request.user = UserFactory(**kwargs)
    assert TEMPLATE.render(Context(roles(request))) == expected


def test_anonymous_visitors_have_no_roles():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    assert TEMPLATE.render(Context(roles(request))) == ""


def test_the_processor_is_installed(client):
    """Render a real page and find ``user_roles`` in its context."""
    user = UserFactory(groups=["reviewer"])
    client.force_login(user)
    response = client.get("/customers/")
    assert set(response.context["user_roles"]) == {"reviewer"}
