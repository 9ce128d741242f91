"""The notification worker's contract sheet (banking-rules §6; issue 13).

It learns recipients from `customer.registered|updated` and account holders from
`account.opened`, turns the §6 triggers into notifications, and publishes
`notification.sent|delivered|failed`. Customers reach only their own preferences and inbox;
templates, endpoints, one-off messages and statistics are staff's (and partners', for their own
endpoints). Two duties are the sender loop (handlers/sending.py).
"""

from __future__ import annotations

from bus.actor import owned_by, staff_only
from bus.handling import Duty, EventRoute, Routes
from contracts import account, audit, customer, identity, loan, notification, payment
from workers.notification.handlers import commands, sending, triggers
from workers.notification.handlers.config import CONFIG

ROUTES = Routes(
    worker="notification",
    commands={
        notification.GetPreferences: owned_by(lambda c: c.customer_id)(commands.get_preferences),
        notification.SetPreferences: owned_by(lambda c: c.preferences.customer_id)(commands.set_preferences),
        notification.ListNotifications: owned_by(lambda c: c.customer_id)(commands.list_notifications),
        notification.MarkRead: owned_by(lambda c: c.customer_id)(commands.mark_read),
        notification.ListTemplates: commands.list_templates,
        notification.DefineTemplate: staff_only(commands.define_template),
        notification.ListWebhookEndpoints: staff_only(commands.list_webhook_endpoints),
        notification.RegisterWebhookEndpoint: staff_only(commands.register_webhook_endpoint),
        notification.EnableWebhookEndpoint: staff_only(commands.enable_webhook_endpoint),
        notification.SendMessage: staff_only(commands.send_message),
        notification.GetNotification: commands.get_notification,
        notification.GetStatistics: staff_only(commands.get_statistics),
    },
    events=(
        EventRoute(customer.CustomerRegistered, triggers.on_customer_registered),
        EventRoute(customer.CustomerUpdated, triggers.on_customer_updated),
        EventRoute(account.AccountOpened, triggers.on_account_opened),
        EventRoute(payment.PaymentCompleted, triggers.on_payment_completed),
        EventRoute(payment.PaymentFailed, triggers.on_payment_failed),
        EventRoute(customer.CustomerKycStatusChanged, triggers.on_kyc_status_changed),
        EventRoute(customer.CustomerDocumentExpiring, triggers.on_document_expiring),
        EventRoute(account.AccountFrozen, triggers.on_account_frozen),
        EventRoute(account.AccountDormant, triggers.on_account_dormant),
        EventRoute(loan.InstalmentDue, triggers.on_instalment_due),
        EventRoute(loan.LoanPaymentOverdue, triggers.on_payment_overdue),
        EventRoute(loan.LoanDisbursed, triggers.on_loan_disbursed),
        EventRoute(identity.UserCreated, triggers.on_user_created),
        EventRoute(identity.LockedOut, triggers.on_locked_out),
        EventRoute(identity.NewDeviceLogin, triggers.on_new_device_login),
        EventRoute(audit.SecurityEventRaised, triggers.on_security_event),
    ),
    duties=(
        Duty("claim_due", sending.claim_due, CONFIG.sweep_s),
        Duty("send_claimed", sending.send_claimed, CONFIG.send_s),
    ),
    lock_for_events=triggers.lock_recipients,
    on_start=commands.seed_templates,
    publishes=notification.EVENTS,
)
