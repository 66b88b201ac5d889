"""Authentication that reads the user's roles with the user: Django's ModelBackend and DRF's tokens.

Every signed-in request loads its user from the session; the pages then ask for the user's roles
(``core.permissions.user_roles``). Reading the group names in the same query as the user saves one
query on every signed-in request.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from core.permissions import user_roles_remember


def _group_names() -> ArraySubquery:
    """The names of the groups of the user ``pk`` (an expression on the user model)."""
    return ArraySubquery(Group.objects.filter(user=OuterRef("pk")).values("name"))


class RoleLoadingModelBackend(ModelBackend):
    """ModelBackend whose ``get_user`` reads the user and its group names in one query."""

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.annotate(_elm_group_names=_group_names()).get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        if not self.user_can_authenticate(user):
            return None
        user_roles_remember(user, group_names=user._elm_group_names)
        return user


class RoleLoadingTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, reading the token, its user and the user's group names in one query."""

    def authenticate_credentials(self, key):
        model = self.get_model()
        names = ArraySubquery(Group.objects.filter(user=OuterRef("user_id")).values("name"))
        try:
            token = model.objects.select_related("user").annotate(_elm_group_names=names).get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user_roles_remember(token.user, group_names=token._elm_group_names)
        return (token.user, token)
