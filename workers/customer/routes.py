"""The customer worker's contract sheet: every command it consumes, and its handler."""

from __future__ import annotations

from bus.actor import owned_by, staff_only
from bus.handling import EventRoute, Routes
from contracts import account, customer
from workers.customer import handlers

own = owned_by(lambda cmd: cmd.customer_id)

ROUTES = Routes(
    worker="customer",
    # A customer (x-actor from the edge) reaches only their own record; the rest is staff work.
    commands={
        customer.RegisterCustomer: staff_only(handlers.register_customer),
        customer.GetCustomer: own(handlers.get_customer),
        customer.UpdateCustomer: own(handlers.update_customer),
        customer.SearchCustomers: staff_only(handlers.search_customers),
        customer.AddKycDocument: own(handlers.add_kyc_document),
        customer.VerifyKycDocument: staff_only(handlers.verify_kyc_document),
        customer.RejectKycDocument: staff_only(handlers.reject_kyc_document),
        customer.SuspendCustomer: staff_only(handlers.suspend_customer),
        customer.ReactivateCustomer: staff_only(handlers.reactivate_customer),
        customer.CloseCustomer: staff_only(handlers.close_customer),
    },
    # Open accounts, so a customer is never closed while one is open.
    events=(
        EventRoute(account.AccountOpened, handlers.on_account_opened),
        EventRoute(account.AccountClosed, handlers.on_account_closed),
    ),
    publishes=customer.EVENTS,
)
