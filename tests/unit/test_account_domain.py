"""Account rules: products, numbers and check digit, eligibility, the status machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datetime import UTC, datetime

from contracts.account import AccountError, AccountStatus, DefineProduct, ProductTerms, ProductType, ProductView
from workers.account.domain.accounts import (
    ACCOUNT_PREFIXES,
    CustomerStanding,
    Refusal,
    StatusChange,
    account_number,
    close,
    decide_opening,
    freeze,
    is_valid_account_number,
    ledger_account_spec,
    ledger_flags,
    ledger_overdraft_limit,
    luhn_check_digit,
    luhn_is_valid,
    default_products,
    product_refusal,
    terms_of,
    unfreeze,
)

S = AccountStatus
ELIGIBLE = CustomerStanding(status="active", kyc_status="completed")


# --- products --------------------------------------------------------------------------------


def test_savings_defaults_are_the_reference_values_in_minor_units() -> None:
    p = default_products()["savings"]
    assert (p.type, p.currency) == (ProductType.savings, "INR")
    assert p.minimum_balance == 10_000
    assert p.daily_cash_withdrawal_limit == 5_000_000
    assert p.daily_payments_out_limit == 10_000_000
    assert p.monthly_debit_limit == 100_000_000
    assert p.overdraft_limit == 0


def test_current_is_ten_times_savings_with_its_own_minimum_and_overdraft_setting() -> None:
    p = default_products()["current"]
    assert (p.type, p.currency) == (ProductType.current, "INR")
    assert p.minimum_balance == 50_000
    assert p.daily_cash_withdrawal_limit == 50_000_000
    assert p.daily_payments_out_limit == 100_000_000
    assert p.monthly_debit_limit == 1_000_000_000
    assert p.overdraft_limit == 0
    assert p.rate_bps == 0  # current accounts earn no interest
    assert default_products(current_overdraft_limit=2_500_000)["current"].overdraft_limit == 2_500_000


def test_catalogue_scales_by_the_configured_currency_exponent() -> None:
    assert default_products("JPY")["savings"].minimum_balance == 100
    assert default_products("KWD")["savings"].minimum_balance == 100_000


def _version(terms: ProductTerms, version: int = 1) -> ProductView:
    return ProductView(**terms.model_dump(), code="x", version=version, defined_by="officer-1",
                       defined_at=datetime(2027, 1, 1, tzinfo=UTC))  # fmt: skip


def test_an_officer_may_define_terms_within_the_rules_of_section_2() -> None:
    savings, current = default_products()["savings"], default_products()["current"]
    assert product_refusal(savings, None) is None and product_refusal(current, None) is None
    richer = savings.model_copy(update={"rate_bps": 425, "maintenance_fee": 5_000})
    assert product_refusal(richer, _version(savings)) is None
    refused = {
        "a savings account never overdraws": savings.model_copy(update={"overdraft_limit": 1}),
        "current accounts earn no credit interest": current.model_copy(update={"rate_bps": 100}),
        "a daily limit cannot exceed the monthly": savings.model_copy(update={"daily_payments_out_limit": 10**9}),
        "is not a currency": savings.model_copy(update={"currency": "XYZ"}),
    }
    for message, terms in refused.items():
        refusal = product_refusal(terms, None)
        assert refusal is not None and refusal.code == AccountError.invalid_product and message in refusal.message
    # A new version keeps the type and the currency: accounts of the old one would change nature.
    turned = product_refusal(current, _version(savings))
    assert turned is not None and "keeps its type and currency" in turned.message
    dollars = product_refusal(savings.model_copy(update={"currency": "USD"}), _version(savings))
    assert dollars is not None and "keeps its type and currency" in dollars.message


def test_the_terms_of_a_view_or_a_command_are_the_terms_alone() -> None:
    savings = default_products()["savings"]
    assert terms_of(_version(savings, 7)) == savings
    command = DefineProduct(**savings.model_dump(), code="savings", actor="officer-1")
    assert terms_of(command) == savings


def test_ledger_overdraft_limit_is_overdraft_minus_minimum_balance() -> None:
    assert ledger_overdraft_limit(10_000, 0) == -10_000
    assert ledger_overdraft_limit(50_000, 2_500_000) == 2_450_000


def test_an_officer_lets_a_current_account_overdraw_within_its_products_ceiling() -> None:
    from workers.account.domain.accounts import overdraft_refusal

    current = default_products(current_overdraft_limit=2_500_000)["current"]
    assert overdraft_refusal(current, 2_500_000) is None and overdraft_refusal(current, 0) is None
    over = overdraft_refusal(current, 2_500_001)
    assert over is not None and over.code == AccountError.invalid_overdraft and "at most 2500000" in over.message
    savings = overdraft_refusal(default_products()["savings"], 1)
    assert savings is not None and "never overdraws" in savings.message


def test_ledger_account_spec_is_a_customer_deposit_that_cannot_overdraw_its_floor() -> None:
    spec = ledger_account_spec(default_products()["savings"])
    assert spec.code == "customer_deposit"
    assert spec.currency == "INR"
    assert "debits_must_not_exceed_credits" in spec.flags
    assert spec.overdraft_limit == -10_000


def test_ledger_flags_follow_the_status() -> None:
    assert "frozen" in ledger_flags(S.frozen) and "closed" not in ledger_flags(S.frozen)
    assert "closed" in ledger_flags(S.closed)
    for status in (S.active, S.dormant):
        assert not {"frozen", "closed"} & ledger_flags(status)


# --- account numbers -------------------------------------------------------------------------


def test_number_has_prefix_branch_sequence_and_luhn_digit() -> None:
    assert account_number(ProductType.savings, "000", 1234) == "SAV000000012344"
    assert account_number(ProductType.current, "042", 99_999_999).startswith("CUR04299999999")
    n = account_number(ProductType.current, "042", 7)
    assert len(n) == 15 and n[:14] == "CUR04200000007"
    assert luhn_is_valid(n[3:])


def test_known_luhn_values() -> None:
    # The textbook example: 7992739871 has check digit 3.
    assert luhn_check_digit("7992739871") == 3
    assert luhn_is_valid("79927398713")
    assert not luhn_is_valid("79927398710")


@pytest.mark.parametrize("bad_sequence", [0, -1, 100_000_000])
def test_sequence_outside_eight_digits_is_a_bug(bad_sequence: int) -> None:
    with pytest.raises(AssertionError):
        account_number(ProductType.savings, "000", bad_sequence)


@pytest.mark.parametrize("bad_branch", ["", "00", "0000", "a00"])
def test_branch_must_be_three_digits(bad_branch: str) -> None:
    with pytest.raises(AssertionError):
        account_number(ProductType.savings, bad_branch, 1)


@pytest.mark.parametrize(
    "s",
    [
        "",
        "SAV00000001234",  # check digit missing
        "SAV0000000123445",  # one digit too many
        "XYZ000000012344",  # unknown prefix
        "sav000000012344",  # prefixes are upper case
        "SAV000000012345",  # wrong check digit
        "SAV000000000000",  # sequence 0 is never issued, even with a matching digit
        "SAV00000001234a",
        " SAV000000012344",
    ],
)
def test_malformed_numbers_are_invalid(s: str) -> None:
    assert not is_valid_account_number(s)


def test_issued_numbers_are_valid() -> None:
    assert is_valid_account_number("SAV000000012344")
    assert is_valid_account_number(account_number(ProductType.current, "999", 12_345_678))


def _single_digit_changes(number: str) -> list[str]:
    return [
        number[:i] + d + number[i + 1 :]
        for i in range(3, len(number))
        for d in "0123456789"
        if d != number[i]
    ]


def _adjacent_swaps(number: str) -> list[tuple[str, str]]:
    """Swaps of distinct adjacent digits, with the pair swapped."""
    out = []
    for i in range(3, len(number) - 1):
        a, b = number[i], number[i + 1]
        if a != b:
            out.append((number[:i] + b + a + number[i + 2 :], a + b))
    return out


def test_every_single_digit_change_is_caught() -> None:
    number = account_number(ProductType.savings, "123", 45_678_901)
    changes = _single_digit_changes(number)
    assert len(changes) == 12 * 9
    assert not any(is_valid_account_number(c) for c in changes)


def test_every_adjacent_swap_except_09_is_caught() -> None:
    number = account_number(ProductType.savings, "123", 45_678_901)
    swaps = _adjacent_swaps(number)
    assert swaps
    for swapped, pair in swaps:
        if set(pair) != {"0", "9"}:
            assert not is_valid_account_number(swapped), (number, swapped)


def test_luhn_blind_spot_is_the_09_swap() -> None:
    # Documents the known limit rather than pretending it away: 09 ↔ 90 keeps the Luhn sum.
    number = account_number(ProductType.savings, "000", 9)  # ...0000009 + digit
    i = number.index("09", 3)
    swapped = number[:i] + "90" + number[i + 2 :]
    assert is_valid_account_number(swapped)


@given(
    product_type=st.sampled_from(list(ProductType)),
    branch=st.integers(0, 999).map(lambda b: f"{b:03d}"),
    sequence=st.integers(1, 99_999_999),
    data=st.data(),
)
def test_check_digit_catches_single_errors_and_guaranteed_transpositions(
    product_type: ProductType, branch: str, sequence: int, data: st.DataObject
) -> None:
    number = account_number(product_type, branch, sequence)
    assert is_valid_account_number(number)
    prefix = len(ACCOUNT_PREFIXES[product_type])  # SAV, CUR, FD
    assert number[prefix:prefix + 11] == f"{branch}{sequence:08d}"

    pos = data.draw(st.integers(prefix, len(number) - 1), label="position")
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != number[pos]]), label="digit")
    assert not is_valid_account_number(number[:pos] + digit + number[pos + 1 :])

    for swapped, pair in _adjacent_swaps(number):
        if set(pair) != {"0", "9"}:
            assert not is_valid_account_number(swapped)


# --- eligibility -----------------------------------------------------------------------------


SAVINGS_V1 = _version(default_products()["savings"])


def test_open_eligible_customer_gets_the_product() -> None:
    assert decide_opening(ELIGIBLE, "savings", SAVINGS_V1) == SAVINGS_V1


def test_open_unknown_product_is_refused() -> None:
    result = decide_opening(ELIGIBLE, "gold_plus", None)
    assert isinstance(result, Refusal) and result.code == AccountError.product_not_found


def test_open_unknown_customer_is_refused() -> None:
    result = decide_opening(None, "savings", SAVINGS_V1)
    assert isinstance(result, Refusal) and result.code == AccountError.customer_unknown


@pytest.mark.parametrize(
    "customer",
    [
        CustomerStanding("active", "pending"),
        CustomerStanding("active", "in_progress"),
        CustomerStanding("active", "rejected"),
        CustomerStanding("active", "expired"),
        CustomerStanding("inactive", "in_progress"),
        CustomerStanding("suspended", "completed"),
        CustomerStanding("closed", "completed"),
    ],
)
def test_open_refused_unless_active_with_kyc_completed(customer: CustomerStanding) -> None:
    result = decide_opening(customer, "savings", SAVINGS_V1)
    assert isinstance(result, Refusal)
    assert result.code == AccountError.customer_not_eligible
    assert result.message


# --- status machine --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.active, S.dormant])
def test_freeze_then_unfreeze_restores_the_previous_status(status: AccountStatus) -> None:
    frozen = freeze(status)
    assert frozen == StatusChange(S.frozen, status_before_freeze=status)
    assert isinstance(frozen, StatusChange)
    assert unfreeze(frozen.status, frozen.status_before_freeze) == StatusChange(status)


def test_statuses_read_back_as_plain_strings_behave_the_same() -> None:
    # The store reads statuses as text; the machine must not depend on enum identity.
    assert freeze("dormant") == StatusChange(S.frozen, S.dormant)  # type: ignore[arg-type]
    assert unfreeze("frozen", "dormant") == StatusChange(S.dormant)  # type: ignore[arg-type]
    assert close("active", balance=0) == StatusChange(S.closed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "code"),
    [(S.frozen, AccountError.invalid_transition), (S.inactive, AccountError.invalid_transition),
     (S.closed, AccountError.account_closed)],
)
def test_freeze_refusals(status: AccountStatus, code: AccountError) -> None:
    result = freeze(status)
    assert isinstance(result, Refusal) and result.code == code


@pytest.mark.parametrize(
    ("status", "code"),
    [(S.active, AccountError.invalid_transition), (S.dormant, AccountError.invalid_transition),
     (S.inactive, AccountError.invalid_transition), (S.closed, AccountError.account_closed)],
)
def test_unfreeze_refusals(status: AccountStatus, code: AccountError) -> None:
    result = unfreeze(status, None)
    assert isinstance(result, Refusal) and result.code == code


def test_frozen_row_without_previous_status_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        unfreeze(S.frozen, None)
    with pytest.raises(AssertionError):
        unfreeze(S.frozen, S.closed)


@pytest.mark.parametrize("status", [S.active, S.dormant])
def test_close_at_zero_balance(status: AccountStatus) -> None:
    assert close(status, balance=0) == StatusChange(S.closed)


@pytest.mark.parametrize("balance", [1, -1, 10_000, -50_000])
def test_close_refused_with_nonzero_balance(balance: int) -> None:
    for status in (S.active, S.dormant):
        result = close(status, balance=balance)
        assert isinstance(result, Refusal) and result.code == AccountError.close_refused_nonzero_balance


def test_close_refused_with_pending_transfers() -> None:
    result = close(S.active, balance=0, pending=500)
    assert isinstance(result, Refusal) and result.code == AccountError.close_refused_pending_transfers


@pytest.mark.parametrize(
    ("status", "code"),
    [(S.frozen, AccountError.account_frozen), (S.inactive, AccountError.invalid_transition),
     (S.closed, AccountError.account_closed)],
)
def test_close_refusals_by_status(status: AccountStatus, code: AccountError) -> None:
    result = close(status, balance=0)
    assert isinstance(result, Refusal) and result.code == code


def test_closed_refuses_everything() -> None:
    for result in (freeze(S.closed), unfreeze(S.closed, S.active), close(S.closed, balance=0)):
        assert isinstance(result, Refusal) and result.code == AccountError.account_closed


# --- dormancy --------------------------------------------------------------------------------


def test_an_account_turns_dormant_twelve_calendar_months_after_its_last_activity() -> None:
    from datetime import date

    from workers.account.domain.accounts import dormancy_cutoff

    assert dormancy_cutoff(date(2027, 12, 7)) == date(2026, 12, 7)
    assert dormancy_cutoff(date(2028, 2, 29)) == date(2027, 2, 28)  # a leap day's year-earlier twin
    assert dormancy_cutoff(date(2027, 1, 15)) == date(2026, 1, 15)


def test_only_an_active_account_turns_dormant_and_only_a_dormant_one_is_reactivated_with_valid_kyc() -> None:
    from workers.account.domain.accounts import go_dormant, reactivate

    assert go_dormant(S.active) == StatusChange(S.dormant)
    assert all(isinstance(go_dormant(s), Refusal) for s in (S.dormant, S.frozen, S.closed, S.opening))
    assert reactivate(S.dormant, ELIGIBLE) == StatusChange(S.active)
    lapsed = reactivate(S.dormant, CustomerStanding("active", "expired"))
    assert isinstance(lapsed, Refusal) and lapsed.code == AccountError.customer_not_eligible
    assert isinstance(reactivate(S.active, ELIGIBLE), Refusal)
    closed = reactivate(S.closed, ELIGIBLE)
    assert isinstance(closed, Refusal) and closed.code == AccountError.account_closed
