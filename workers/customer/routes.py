"""The customer worker's contract sheet: every command it consumes, and its handler."""

from __future__ import annotations

from bus.actor import owned_by, staff_only
from bus.handling import EventRoute, Routes
from contracts import account as account_events
from contracts import customer as c
from workers.customer import handlers as h

own = owned_by(lambda cmd: cmd.customer_id)

ROUTES = Routes(
    worker="customer",
    # A customer (x-actor from the edge) reaches only their own record; the rest is staff work.
    commands={
        c.RegisterCustomer: staff_only(h.register_customer),
        c.GetCustomer: own(h.get_customer),
        c.UpdateCustomer: own(h.update_customer),
        c.SearchCustomers: staff_only(h.search_customers),
        c.AddKycDocument: own(h.add_kyc_document),
        c.VerifyKycDocument: staff_only(h.verify_kyc_document),
        c.RejectKycDocument: staff_only(h.reject_kyc_document),
        c.SuspendCustomer: staff_only(h.suspend_customer),
        c.ReactivateCustomer: staff_only(h.reactivate_customer),
        c.CloseCustomer: staff_only(h.close_customer),
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
