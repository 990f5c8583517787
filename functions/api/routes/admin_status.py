"""Placeholder: filled in by issue 15's work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
