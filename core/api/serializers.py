"""Serializers every API shares: DRF's error bodies, the token exchange, finite floats."""

from __future__ import annotations

import math

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """DRF's error body for 401/403/404/429."""

    detail = serializers.CharField(read_only=True)


# DRF's 400 body: each offending parameter (or non_field_errors) mapped to its messages.
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    # A body that is not JSON at all is answered with {"detail": "JSON parse error - ..."}.
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class TokenRequestSerializer(serializers.Serializer):
    """The body of POST /api/auth/token/ as documented (DRF's AuthTokenSerializer validates it)."""

    username = serializers.CharField(min_length=1, max_length=150)
    password = serializers.CharField(min_length=1, max_length=4096, style={"input_type": "password"})


class FiniteFloatField(serializers.FloatField):
    """A float that is null when not finite: NaN and infinity are not JSON, and a batch could store them."""

    def to_representation(self, value):
        value = super().to_representation(value)
        return value if math.isfinite(value) else None
