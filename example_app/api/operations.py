"""For load balancers and monitoring: answers without a token and without calling DynamoDB."""

from __future__ import annotations

from fastapi import APIRouter

from example_app.api.schemas import HealthView

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthView, summary="Is the server up?")
async def health() -> HealthView:
    """Answers 200 while the server runs; needs no token and does not call DynamoDB."""
    return HealthView(status="ok")
