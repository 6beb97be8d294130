"""Retry settings for tests."""

from __future__ import annotations

from framework.application import Backoff

NO_WAIT = Backoff(base=0.0, cap=0.0)
"""The application's retries without their waits: a test of conflicts needs the attempts, and
sleeping between them would only make the suite slower."""
