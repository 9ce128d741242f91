"""Messages of the loan worker (banking-rules §5; issue 12).

Money is integer minor units; rates are basis points a year (12% = 1200, 12.5% = 1250). What a
schedule is and how it is rounded (half-up to the minor unit, the last instalment taking the
remainders) is written in workers/loan/domain/schedule.py.

So far: the schedule calculator (`loan.calculate`: an EMI and its whole schedule for any method,
no state) and loan products as data (an officer defines and versions them within §5's caps), on
which applications and loans will stand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field, model_validator

from contracts.common import MAX_AMOUNT, Command, Contract, Event, currency_field

# Every application: 1,000.00 ≤ amount ≤ 10,000,000.00, 1 to 360 months (§5, at exponent 2).
MIN_PRINCIPAL = 100_000
MAX_PRINCIPAL = 1_000_000_000
MAX_MONTHS = 360
MAX_RATE_BPS = 5_000  # 50% a year: above every product's cap, so a typing error is refused, not scheduled
MAX_FEE_BPS = 1_000  # a processing fee or prepayment charge above 10% is a typing error
MAX_GRACE_DAYS = 30
PRODUCT_CODE_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
ASSESSMENT_RATE_BPS, ASSESSMENT_MONTHS = 1_200, 60  # underwriting's assessment EMI: EMI(amount, 12%, 60 months)


class InterestMethod(StrEnum):
    declining = "declining"  # interest on the balance outstanding each month
    flat = "flat"  # interest on the whole principal for the whole term, spread evenly


class Amortization(StrEnum):
    equal_instalments = "equal_instalments"  # one EMI a month (the last takes the remainders)
    equal_principal = "equal_principal"  # the same principal a month, interest on the balance on top


class LoanType(StrEnum):
    personal = "personal"
    home = "home"
    auto = "auto"
    education = "education"
    business = "business"
    gold = "gold"


@dataclass(frozen=True, slots=True)
class ProductCap:
    max_rate_bps: int
    max_principal: int  # minor units at exponent 2
    max_months: int
    secured: bool


# §5's caps; gold sets its own (decision: as a secured personal loan).
PRODUCT_CAPS: dict[LoanType, ProductCap] = {
    LoanType.personal: ProductCap(2_500, 10_000_000, 60, secured=False),
    LoanType.home: ProductCap(1_200, 1_000_000_000, 360, secured=True),
    LoanType.auto: ProductCap(1_500, 50_000_000, 84, secured=True),
    LoanType.education: ProductCap(800, 50_000_000, 180, secured=False),
    LoanType.business: ProductCap(2_000, 500_000_000, 120, secured=False),
    LoanType.gold: ProductCap(2_000, 10_000_000, 36, secured=True),
}


class LoanError(StrEnum):
    """Stable refusal codes of the loan worker (the reply's `error.code`)."""

    invalid_terms = "invalid_terms"  # a schedule that cannot be drawn (the message says why)
    invalid_product = "invalid_product"  # terms beyond §5's caps for the type, or a type change (the message says which)
    loan_product_not_found = "loan_product_not_found"


# --- products --------------------------------------------------------------------------------


class LoanProductTerms(Contract):
    """What an officer defines for a loan product (banking-rules §5), within its type's caps."""

    name: str = Field(min_length=1, max_length=100, description="what customers see, e.g. `Home Loan`")
    type: LoanType = Field(description="personal, home, auto, education, business or gold; kept across versions")
    currency: str = currency_field("ISO 4217 currency of its loans; kept across versions")
    method: InterestMethod = InterestMethod.declining
    amortization: Amortization = Amortization.equal_instalments
    max_rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="the highest rate a loan of it may carry, ≤ the type's cap")
    min_principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units")
    max_principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units, ≤ the type's cap")
    min_months: int = Field(default=1, ge=1, le=MAX_MONTHS)
    max_months: int = Field(ge=1, le=MAX_MONTHS, description="≤ the type's cap")
    processing_fee_bps: int = Field(default=0, ge=0, le=MAX_FEE_BPS, description="taken from the disbursement")
    late_fee: int = Field(default=0, ge=0, le=MAX_AMOUNT, description="charged once on an instalment overdue, minor units")
    prepayment_charge_bps: int = Field(default=200, ge=0, le=MAX_FEE_BPS, description="of the principal foreclosed (§5: 2%)")
    penalty_rate_bps: int = Field(default=200, ge=0, le=MAX_RATE_BPS, description="a year on amounts overdue (§5: 2%)")
    grace_days: int = Field(default=7, ge=0, le=MAX_GRACE_DAYS, description="days after a due date without penalty")
    secured: bool = Field(description="needs collateral (home, auto and gold always do)")


class LoanProductView(LoanProductTerms):
    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product code, e.g. `home`")
    version: int = Field(ge=1, description="1, then one more each time an officer changes the terms")
    defined_by: str = Field(description="who defined this version (`system` for the shipped defaults)")
    defined_at: AwareDatetime = Field(description="UTC time this version was defined")


class LoanProductList(Contract):
    items: list[LoanProductView] = Field(description="each product's newest version: what applications are made under")


# --- results ---------------------------------------------------------------------------------


class Instalment(Contract):
    number: int = Field(ge=1, le=MAX_MONTHS)
    due_date: dt.date = Field(description="the disbursement's day of the month, k months later (clamped to the month's end)")
    principal: int = Field(ge=0, description="minor units")
    interest: int = Field(ge=0, description="minor units")
    amount: int = Field(ge=0, description="principal + interest, minor units")
    balance_after: int = Field(ge=0, description="principal outstanding after it, minor units")


class Schedule(Contract):
    principal: int = Field(description="minor units")
    currency: str = currency_field()
    rate_bps: int
    months: int
    method: InterestMethod
    amortization: Amortization
    disbursed_on: dt.date
    emi: int = Field(description="the regular instalment (the first, for equal principal), minor units")
    total_interest: int = Field(ge=0, description="minor units")
    total_payable: int = Field(ge=0, description="principal + total interest, minor units")
    maturity_date: dt.date = Field(description="the last due date")
    instalments: list[Instalment]


# --- commands --------------------------------------------------------------------------------


class CalculateLoan(Command):
    """An EMI and its whole schedule, for any method; no state (banking-rules §5 EMI and schedule).
    Result: `Schedule`. Refusals: invalid_terms."""

    routing_key: ClassVar[str] = "loan.calculate"
    read_only: ClassVar[bool] = True

    principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units: 1,000.00 to 10,000,000.00")
    currency: str = currency_field("ISO 4217 currency")
    rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="a year, basis points: 12% = 1200")
    months: int = Field(ge=1, le=MAX_MONTHS)
    method: InterestMethod = InterestMethod.declining
    amortization: Amortization = Amortization.equal_instalments
    disbursed_on: dt.date | None = Field(default=None, description="due dates count from it; null: the open business date")

    @model_validator(mode="after")
    def _flat_is_even(self) -> CalculateLoan:
        if self.method == InterestMethod.flat and self.amortization != Amortization.equal_instalments:
            raise ValueError("flat interest is spread evenly: its amortization is equal_instalments")
        return self


class DefineLoanProduct(LoanProductTerms, Command):
    """Create a loan product (version 1) or change its terms (the next version): applications are
    made under the newest; loans keep theirs. The same terms as the newest define nothing new (a
    retry answers that version). Staff only. Result: `LoanProductView`. Refusals: invalid_product."""

    routing_key: ClassVar[str] = "loan.define_product"

    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product code, e.g. `home_plus`")
    actor: str = Field(min_length=1, max_length=200, description="who defines it")


class GetLoanProduct(Command):
    """A loan product's newest version, or the one named. Result: `LoanProductView`. Refusals:
    loan_product_not_found."""

    routing_key: ClassVar[str] = "loan.get_product"
    read_only: ClassVar[bool] = True

    code: str = Field(pattern=PRODUCT_CODE_PATTERN)
    version: int | None = Field(default=None, ge=1, description="none: the newest")


class ListLoanProducts(Command):
    """Result: `LoanProductList`."""

    routing_key: ClassVar[str] = "loan.list_products"
    read_only: ClassVar[bool] = True


class LoanProductDefined(Event):
    routing_key: ClassVar[str] = "loan.product_defined"

    product: LoanProductView
    occurred_at: AwareDatetime


COMMANDS: tuple[type[Command], ...] = (CalculateLoan, DefineLoanProduct, GetLoanProduct, ListLoanProducts)
EVENTS: tuple[type[Event], ...] = (LoanProductDefined,)
