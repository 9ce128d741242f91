"""Loan products as data (banking-rules §5): an officer defines and versions them; applications
are made under a product's newest version and loans keep it."""

from __future__ import annotations

from bus.handling import Context
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import products

SYSTEM = "system"


async def ensure_default_products(ctx: Context) -> None:
    """At start: version 1 of one product per type, on a new installation (every replica tries;
    the lock makes one write them)."""
    await store.lock_products(ctx.conn)
    for code, terms in products.default_products().items():
        if await store.product(ctx.conn, code) is None:
            await store.insert_product(ctx.conn, code, 1, terms, SYSTEM, ctx.now)


async def list_products(ctx: Context, cmd: c.ListLoanProducts) -> Reply:
    return Reply.success(c.LoanProductList(items=await store.newest_products(ctx.conn)))


async def get_product(ctx: Context, cmd: c.GetLoanProduct) -> Reply:
    product = await store.product(ctx.conn, cmd.code, cmd.version)
    if product is None:
        version = f" version {cmd.version}" if cmd.version else ""
        return Reply.refusal(c.LoanError.loan_product_not_found, f"no loan product {cmd.code!r}{version}")
    return Reply.success(product)


async def define_product(ctx: Context, cmd: c.DefineLoanProduct) -> Reply:
    await store.lock_products(ctx.conn)
    newest = await store.product(ctx.conn, cmd.code)
    terms = products.terms_of(cmd)
    if refusal := products.product_refusal(terms, newest):
        return Reply.refusal(refusal.code, refusal.message)
    if newest is not None and products.terms_of(newest) == terms:
        return Reply.success(newest)  # nothing new: a retry, or a definition already in force
    product = await store.insert_product(ctx.conn, cmd.code, newest.version + 1 if newest else 1, terms, cmd.actor,
                                         ctx.now)  # fmt: skip
    await ctx.emit(c.LoanProductDefined(product=product, occurred_at=ctx.now))
    return Reply.success(product)
