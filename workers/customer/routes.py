"""The customer worker's contract sheet: every command it consumes, and its handler."""

from __future__ import annotations

from bus.runtime import EventRoute, Routes
from contracts import account as account_events
from contracts import customer as c
from workers.customer import handlers as h

ROUTES = Routes(
    worker="customer",
    commands={
        c.RegisterCustomer: h.register_customer,
        c.GetCustomer: h.get_customer,
        c.UpdateCustomer: h.update_customer,
        c.SearchCustomers: h.search_customers,
        c.AddKycDocument: h.add_kyc_document,
        c.VerifyKycDocument: h.verify_kyc_document,
        c.RejectKycDocument: h.reject_kyc_document,
        c.SuspendCustomer: h.suspend_customer,
        c.ReactivateCustomer: h.reactivate_customer,
        c.CloseCustomer: h.close_customer,
    },
    # Open accounts, so a customer is never closed while one is open.
    events=(
        EventRoute(account_events.AccountOpened, h.on_account_opened),
        EventRoute(account_events.AccountClosed, h.on_account_closed),
    ),
)
# Published events (through the outbox): customer.registered, customer.updated,
# customer.kyc_status_changed, customer.suspended, customer.reactivated, customer.closed,
# customer.risk_changed. (customer.document_expiring waits for the close-of-business job.)
