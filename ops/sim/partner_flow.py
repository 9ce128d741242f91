#!/usr/bin/env python3
"""A partner's view of CBS: register a customer, complete KYC, open and freeze an account,
using only the published contracts over AMQP (no HTTP, no CBS code but `contracts`).

As a real partner does: with its own broker user (made by `cbs partner add NAME --may-send
customer.register_customer customer.add_kyc_document customer.verify_kyc_document
customer.get_customer account.open_account account.freeze_account account.get_account`),
every command carrying its `user_id` (checked by the broker; a command without one is refused),
and replies read from its own queue `partner.NAME.replies`.

    CBS_PARTNER_URL=amqp://partner.NAME:SECRET@127.0.0.1:5672/ .venv/bin/python -m ops.sim.partner_flow

Prints one JSON line with what it did; exits non-zero if any step was refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import date
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika

from contracts import account as a
from contracts import customer as c
from contracts.common import Command, Reply

ELIGIBILITY_WAIT_S = 20.0  # the account worker learns KYC from events, a moment later


class Partner:
    def __init__(self, channel: aio_pika.abc.AbstractChannel, reply_queue: aio_pika.abc.AbstractQueue,
                 user: str) -> None:  # fmt: skip
        self.channel = channel
        self.reply_queue = reply_queue
        self.user = user
        self.pending: dict[str, asyncio.Future[Reply]] = {}

    async def on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            future = self.pending.pop(message.correlation_id or "", None)
            if future and not future.done():
                future.set_result(Reply.model_validate_json(message.body))

    async def send(self, command: Command, timeout_s: float = 10.0) -> Reply:
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        exchange = await self.channel.get_exchange("cbs.commands")
        await exchange.publish(
            aio_pika.Message(
                body=command.model_dump_json().encode(),
                content_type="application/json",
                message_id=str(uuid.uuid4()),  # a real partner keeps this to retry safely
                correlation_id=correlation_id,
                reply_to=self.reply_queue.name,
                type=command.message_type,
                user_id=self.user,  # who asks: the broker refuses any other
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=command.routing_key,
            mandatory=True,
        )
        return await asyncio.wait_for(future, timeout_s)

    async def ok(self, command: Command) -> dict[str, Any]:
        reply = await self.send(command)
        if not reply.ok:
            raise SystemExit(f"{command.routing_key} refused: {reply.error}")
        assert isinstance(reply.result, dict)
        return reply.result


async def run(amqp_url: str) -> dict[str, Any]:
    user = unquote(urlsplit(amqp_url).username or "")
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        reply_queue = await channel.declare_queue(f"{user}.replies", passive=True)  # made by `cbs partner add`
        partner = Partner(channel, reply_queue, user)
        await reply_queue.consume(partner.on_reply)

        customer_id = uuid.uuid4()
        suffix = customer_id.hex[:8]
        await partner.ok(c.RegisterCustomer(
            customer_id=customer_id, customer_type="individual", first_name="Partner", last_name=f"Flow {suffix}",
            date_of_birth=date(1990, 1, 1), email=f"partner-{suffix}@example.com", phone="+919800000042",
            national_id=f"NID-{suffix}", addresses=[c.Address(street="1 MG Road", city="Pune", country="IN")],
        ))  # fmt: skip
        for document_type in ("national_id", "utility_bill", "photo"):
            document_id = uuid.uuid4()
            await partner.ok(c.AddKycDocument(
                customer_id=customer_id, document_id=document_id, document_type=document_type,
                number=f"{document_type}-{suffix}", issuer="Issuer", issue_date=date.today(),
            ))  # fmt: skip
            await partner.ok(c.VerifyKycDocument(customer_id=customer_id, document_id=document_id, reviewer="partner-kyc"))
        customer = await partner.ok(c.GetCustomer(customer_id=customer_id))

        account_id = uuid.uuid4()
        open_account = a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="savings")
        deadline = asyncio.get_running_loop().time() + ELIGIBILITY_WAIT_S
        while True:
            reply = await partner.send(open_account)
            if reply.ok or asyncio.get_running_loop().time() > deadline:
                break
            assert reply.error is not None
            if reply.error.code not in ("customer_unknown", "customer_not_eligible"):
                break
            await asyncio.sleep(0.2)
        if not reply.ok:
            raise SystemExit(f"account.open_account refused: {reply.error}")
        await partner.ok(a.FreezeAccount(account_id=account_id, actor="partner", reason="partner flow"))
        account = await partner.ok(a.GetAccount(account_id=account_id))
        return {
            "customer_id": str(customer_id),
            "customer_status": customer["status"],
            "kyc_status": customer["kyc_status"],
            "account_id": str(account_id),
            "account_number": account["number"],
            "account_status": account["status"],
        }


def main() -> int:
    if not os.environ.get("CBS_PARTNER_URL"):
        print("set CBS_PARTNER_URL to the partner's amqp:// URL (see this script's docstring)", file=sys.stderr)
        return 2
    result = asyncio.run(run(os.environ["CBS_PARTNER_URL"]))
    print(json.dumps(result))
    return 0 if result["account_status"] == "frozen" else 1


if __name__ == "__main__":
    sys.exit(main())
