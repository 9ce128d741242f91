"""The loan worker's contract sheet (banking-rules §5; issue 12).

So far: the schedule calculator and the products' reads, open to every caller (they hold nothing
of anyone's); products defined by staff only; applications (a customer makes, reads, submits and
withdraws only their own; staff underwrite, reject, approve and disburse); their review (a customer
adds documents to their own and sets its collateral while a draft; staff verify documents and move
the review's stages); loans (read by their
customer and staff); and what it learns from events:
the business date (`day.opened`), each customer's standing and each account's status. Close of
business asks it `loan.repayments` (`day.closing`).
"""

from __future__ import annotations

from bus.actor import staff_only
from bus.handling import EventRoute, Routes
from contracts import account, customer, day, loan
from workers.loan.handlers import (applications, calculator, learning, loans, payments, products, receipts, repayments,
                                  restructure, review, write_off)

ROUTES = Routes(
    worker="loan",
    commands={
        loan.CalculateLoan: calculator.calculate,
        loan.ListLoanProducts: products.list_products,
        loan.GetLoanProduct: products.get_product,
        loan.DefineLoanProduct: staff_only(products.define_product),
        loan.CreateLoanApplication: applications.create,
        loan.GetLoanApplication: applications.get,
        loan.SubmitLoanApplication: applications.submit,
        loan.UnderwriteLoanApplication: staff_only(applications.underwrite),
        loan.ApproveLoanApplication: staff_only(applications.approve),
        loan.RejectLoanApplication: staff_only(applications.reject),
        loan.CancelLoanApplication: applications.cancel,
        loan.AddApplicationDocument: review.add_document,
        loan.VerifyApplicationDocument: staff_only(review.verify_document),
        loan.SetApplicationCollateral: review.set_collateral,
        loan.AdvanceApplicationStage: staff_only(review.advance_stage),
        loan.DisburseLoan: staff_only(loans.disburse),
        loan.GetLoan: loans.get_loan,
        loan.PayLoan: payments.pay,
        loan.ListCustomerLoans: loans.list_customer_loans,
        loan.GetForeclosureQuote: payments.get_foreclosure_quote,
        loan.ForecloseLoan: payments.foreclose,
        loan.ListLoanRepayments: receipts.list_repayments,
        loan.GetLoanSchedule: loans.get_schedule,
        loan.WriteOffLoan: staff_only(write_off.write_off_loan),
        loan.RequestLoanRestructure: staff_only(restructure.request),
        loan.ApproveLoanRestructure: staff_only(restructure.approve),
    },
    events=(
        EventRoute(day.DayOpened, calculator.on_day_opened),
        EventRoute(day.DayClosing, repayments.on_day_closing),
        EventRoute(customer.CustomerRegistered, learning.on_customer_registered),
        EventRoute(customer.CustomerKycStatusChanged, learning.on_kyc_status_changed),
        *(EventRoute(e, learning.on_customer_status_changed)
          for e in (customer.CustomerSuspended, customer.CustomerReactivated, customer.CustomerClosed)),
        *(EventRoute(e, learning.on_account_fact)
          for e in (account.AccountOpened, account.AccountFrozen, account.AccountUnfrozen, account.AccountClosed,
                    account.AccountDormant, account.AccountReactivated)),
    ),  # fmt: skip
    continuations={
        loans.STEP_ACCOUNT: loans.account_answered,
        loans.STEP_MONEY: loans.money_answered,
        loans.STEP_PAYOUT: loans.payout_answered,
        payments.STEP_PAY: payments.payment_answered,
        payments.STEP_FORECLOSE: payments.foreclosure_paid,
        payments.STEP_CLOSE_ACCOUNT: payments.account_closed,
        repayments.STEP_POST: repayments.posted,
        write_off.STEP_BOOK: write_off.booked,
        write_off.STEP_CLOSE: write_off.account_closed,
        write_off.STEP_RECOVERY: write_off.recovered,
        restructure.STEP_CAPITALISE: restructure.capitalised,
    },
    on_start=products.ensure_default_products,
    publishes=loan.EVENTS,
)
# Sent (through the outbox, replies on loan.replies): ledger.create_accounts (a loan's account),
# ledger.create_transfers (its disbursement chain, repayments, payments, foreclosures, write-offs,
# capitalised interest, the day's accrual postings), ledger.set_account_flags (a loan's account
# closed) and payment.initiate_payment (a disbursement's payout onwards).
