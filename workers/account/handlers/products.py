"""Products as data (banking-rules §2): an officer defines and versions them; new accounts open
under a product's newest version and keep it."""

from __future__ import annotations

from bus.handling import Context
from contracts import account as c
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain

SYSTEM = "system"


async def ensure_default_products(ctx: Context) -> None:
    """At start: version 1 of the shipped products, on a new installation (every replica tries;
    the lock makes one write them)."""
    await store.lock_products(ctx.conn)
    for code, terms in domain.default_products().items():
        if await store.product(ctx.conn, code) is None:
            await store.insert_product(ctx.conn, code, 1, terms, SYSTEM, ctx.now)


async def list_products(ctx: Context, cmd: c.ListProducts) -> Reply:
    return Reply.success(c.ProductList(items=await store.newest_products(ctx.conn)))


async def get_product(ctx: Context, cmd: c.GetProduct) -> Reply:
    product = await store.product(ctx.conn, cmd.code, cmd.version)
    if product is None:
        version = f" version {cmd.version}" if cmd.version else ""
        return Reply.refusal(c.AccountError.product_not_found, f"no product {cmd.code!r}{version}")
    return Reply.success(product)


async def define_product(ctx: Context, cmd: c.DefineProduct) -> Reply:
    await store.lock_products(ctx.conn)
    newest = await store.product(ctx.conn, cmd.code)
    terms = domain.terms_of(cmd)
    if refusal := domain.product_refusal(terms, newest):
        return Reply.refusal(refusal.code, refusal.message)
    if newest is not None and domain.terms_of(newest) == terms:
        return Reply.success(newest)  # nothing new: a retry, or a definition already in force
    product = await store.insert_product(ctx.conn, cmd.code, newest.version + 1 if newest else 1, terms, cmd.actor,
                                         ctx.now)  # fmt: skip
    await ctx.emit(c.ProductDefined(product=product, occurred_at=ctx.now))
    return Reply.success(product)
