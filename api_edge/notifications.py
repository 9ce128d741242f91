"""Notification routes (banking-rules §6; issue 13): a customer's preferences and in-app inbox
(their own: the notification worker checks it), templates and delivery statistics for staff
(`notifications:manage`), webhook endpoints for staff and partners (`webhooks:manage`; a partner
sees and re-enables only its own)."""

from __future__ import annotations

import uuid
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.errors import problem
from api_edge.gateway import body_model, gateway_of, idempotency_key
from contracts import notification as c

router = APIRouter(tags=["notifications"])

PreferencesBody = body_model(c.Preferences, exclude={"customer_id"}, name="NotificationPreferencesBody")
TemplateBody = body_model(c.DefineTemplate, exclude=set(), name="NotificationTemplateBody")


class MarkReadBody(BaseModel):
    notification_ids: list[UUID] = Field(min_length=1, max_length=100)


class EndpointBody(BaseModel):
    url: str = Field(min_length=8, max_length=2_000, description="where notifications are POSTed, signed (CBS-Signature)")
    categories: list[c.NotificationCategory] = Field(min_length=1, max_length=8)
    customer_id: UUID | None = Field(default=None, description="only this customer's notifications")
    endpoint_id: UUID | None = Field(default=None, description="default: derived from the Idempotency-Key")


@router.get("/v1/customers/{customer_id}/notification-preferences")
async def get_preferences(customer_id: UUID, request: Request, who: Principal = require("notifications:read")) -> Response:
    """Per channel and category on or off (none stored: all on but marketing, which needs consent),
    language, time zone and quiet hours."""
    return await gateway_of(request).query(c.GetPreferences, {"customer_id": customer_id}, who)


@router.put("/v1/customers/{customer_id}/notification-preferences")
async def set_preferences(
    customer_id: UUID, body: PreferencesBody,  # type: ignore[valid-type]
    request: Request, who: Principal = require("notifications:write"),
) -> Response:  # fmt: skip
    """Replace the preferences as a whole (a PUT: repeating it is harmless)."""
    data = {"preferences": {**body.model_dump(mode="json"), "customer_id": str(customer_id)}}  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.SetPreferences, data, who, None, require_key=False)


def _me(who: Principal) -> str | Response:
    if who.customer_id is None:
        return problem(403, "forbidden", "only a customer has an in-app inbox")
    return who.customer_id


@router.get("/v1/me/notifications")
async def my_notifications(
    request: Request, unread_only: bool = Query(default=False), limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=500), who: Principal = require("notifications:read"),
) -> Response:  # fmt: skip
    """The signed-in customer's in-app notifications, newest first."""
    me = _me(who)
    if isinstance(me, Response):
        return me
    data = {"customer_id": me, "unread_only": unread_only, "limit": limit, "cursor": cursor}
    return await gateway_of(request).query(c.ListNotifications, data, who)


@router.post("/v1/me/notifications/read")
async def mark_read(
    body: MarkReadBody, request: Request, who: Principal = require("notifications:read"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    me = _me(who)
    if isinstance(me, Response):
        return me
    data = {"customer_id": me, "notification_ids": [str(i) for i in body.notification_ids]}
    return await gateway_of(request).change(c.MarkRead, data, who, key)


@router.get("/v1/notification-templates")
async def list_templates(
    request: Request, key: str | None = Query(default=None, max_length=64), who: Principal = require("notifications:manage"),
) -> Response:  # fmt: skip
    """The latest version of each template in each language."""
    return await gateway_of(request).query(c.ListTemplates, {"key": key}, who)


@router.post("/v1/notification-templates", status_code=201)
async def define_template(
    body: TemplateBody,  # type: ignore[valid-type]
    request: Request, who: Principal = require("notifications:manage"), key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """The template's next version in its language (Jinja2, sandboxed; every variable required)."""
    return await gateway_of(request).change(c.DefineTemplate, body.model_dump(), who, key, created=True)  # type: ignore[attr-defined]


@router.get("/v1/notification-statistics")
async def statistics(request: Request, days: int = Query(default=7, ge=1, le=90),
                     who: Principal = require("notifications:manage")) -> Response:  # fmt: skip
    """Notifications per channel per day, by status."""
    return await gateway_of(request).query(c.GetStatistics, {"days": days}, who)


@router.get("/v1/webhook-endpoints")
async def list_endpoints(request: Request, who: Principal = require("webhooks:manage")) -> Response:
    return await gateway_of(request).query(c.ListWebhookEndpoints, {}, who)


@router.post("/v1/webhook-endpoints", status_code=201)
async def register_endpoint(
    body: EndpointBody, request: Request, who: Principal = require("webhooks:manage"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """An endpoint and its signing secret, shown once: verify `CBS-Signature: t=…,v1=…` as
    HMAC-SHA256 of `<t>.<body>` with it, and refuse a `t` more than 300 s away."""
    endpoint_id = body.endpoint_id or (uuid.uuid5(uuid.NAMESPACE_URL, f"webhook:{who.subject}:{key}") if key else None)
    data = {**body.model_dump(mode="json", exclude={"endpoint_id"}), "endpoint_id": str(endpoint_id) if endpoint_id else None}
    return await gateway_of(request).change(c.RegisterWebhookEndpoint, data, who, key, created=True)


@router.post("/v1/webhook-endpoints/{endpoint_id}/enable")
async def enable_endpoint(
    endpoint_id: UUID, request: Request, who: Principal = require("webhooks:manage"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """Re-enable an endpoint disabled after repeated failures."""
    return await gateway_of(request).change(c.EnableWebhookEndpoint, {"endpoint_id": endpoint_id}, who, key)


@router.get("/v1/notifications/{notification_id}")
async def get_notification(notification_id: UUID, request: Request, who: Principal = require("notifications:read")) -> Response:
    """One notification and its status (a customer: their own)."""
    return await gateway_of(request).query(c.GetNotification, {"notification_id": notification_id}, who)
