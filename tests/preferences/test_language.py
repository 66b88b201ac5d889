"""The language switch: remembered per user, applied at sign-in in any browser."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from preferences.models import UserPreference
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

LIST_URL = reverse("customer-list")


def switch(client: Client, language: str):
    return client.post(reverse("set_language"), {"language": language, "next": LIST_URL})


def sign_in(client: Client, username: str):
    return client.post(reverse("login"), {"username": username, "password": TEST_PASSWORD})


def test_switching_stores_the_language_for_the_signed_in_user(client):
    """Remember the chosen language on the user, and render the next page in it."""
    # given
    user = UserFactory(username="kenji", groups=["sales"])
    client.force_login(user)
    # when
    response = switch(client, "ja")
    # then
    assert response.status_code == 302
    assert UserPreference.objects.get(user=user).language == "ja"
    html = client.get(LIST_URL).content.decode()
    assert '<html lang="ja">' in html


def test_the_language_follows_the_user_to_a_new_browser(client):
    """Sign in from a fresh browser (no cookie) and get the remembered language, cookie included."""
    # given a user who chose Japanese in another browser
    user = UserFactory(username="kenji", groups=["sales"])
    client.force_login(user)
    switch(client, "ja")
    fresh = Client()
    # when
    response = sign_in(fresh, "kenji")
    # then
    assert response.status_code == 302
    assert fresh.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ja"
    assert '<html lang="ja">' in fresh.get(LIST_URL).content.decode()


def test_the_remembered_language_beats_the_browser_header(client):
    """Prefer the user's choice over Accept-Language after sign-in."""
    UserPreference.objects.create(user=UserFactory(username="emma", groups=["sales"]), language="en")
    browser = Client(headers={"accept-language": "ja"})
    assert '<html lang="ja">' in browser.get(reverse("login")).content.decode()
    sign_in(browser, "emma")
    assert '<html lang="en">' in browser.get(LIST_URL).content.decode()


def test_the_sign_in_page_after_sign_out_keeps_the_language(client):
    """Keep Japanese on the sign-in page after signing out (the cookie stays)."""
    client.force_login(UserFactory(username="kenji", groups=["sales"]))
    switch(client, "ja")
    client.post(reverse("logout"))
    assert '<html lang="ja">' in client.get(reverse("login")).content.decode()


def test_anonymous_switching_stores_nothing(client):
    """Switch only the cookie for visitors who are not signed in."""
    response = switch(client, "ja")
    assert response.status_code == 302
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ja"
    assert not UserPreference.objects.exists()


def test_an_unknown_language_is_ignored(client):
    """Store nothing for a language the site does not offer."""
    user = UserFactory(username="kenji", groups=["sales"])
    client.force_login(user)
    switch(client, "xx")
    assert not UserPreference.objects.exists()
    assert '<html lang="en">' in client.get(LIST_URL).content.decode()
