"""Watch-list screening: the file format, the environment variable, and matching (banking-rules §4)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.payment import Payee
from workers.payment.domain.screening import ENV_VAR, WatchList, WatchListError, matches, normalize_name

TEXT = """
# sanctioned persons
name:   Some   Person
NAME: Ravi Kumar
account: 123456789
account: 9876 5432 10
  # indented comment
vpa: Bad.Guy@YBL
"""


def test_from_text_parses_and_normalises() -> None:
    wl = WatchList.from_text(TEXT)
    assert wl.names == frozenset({"some person", "ravi kumar"})
    assert wl.account_numbers == frozenset({"123456789", "9876543210"})
    assert wl.vpas == frozenset({"bad.guy@ybl"})
    assert len(wl) == 5


def test_from_text_of_nothing_is_empty() -> None:
    assert WatchList.from_text("") == WatchList()
    assert WatchList.from_text("# only a comment\n\n") == WatchList()


@pytest.mark.parametrize("line", ["Some Person", "iban: DE00123", "name:", "vpa:   "])
def test_a_malformed_line_raises_naming_the_line(line: str) -> None:
    with pytest.raises(WatchListError, match="line 2"):
        WatchList.from_text(f"name: ok\n{line}\n")


def test_from_env_without_the_variable_is_empty() -> None:
    assert WatchList.from_env({}) == WatchList()
    assert WatchList.from_env({ENV_VAR: "  "}) == WatchList()


def test_from_env_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "watch.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert WatchList.from_env({ENV_VAR: str(path)}) == WatchList.from_text(TEXT)


def test_from_env_with_an_unreadable_file_raises_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(WatchListError, match=f"{ENV_VAR}=.*nope.txt: cannot read the watch list"):
        WatchList.from_env({ENV_VAR: str(missing)})
    with pytest.raises(WatchListError, match="cannot read"):
        WatchList.from_env({ENV_VAR: str(tmp_path)})  # a directory


def test_from_env_names_the_file_on_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "watch.txt"
    path.write_text("oops\n", encoding="utf-8")
    with pytest.raises(WatchListError, match="watch.txt line 1"):
        WatchList.from_env({ENV_VAR: str(path)})


WL = WatchList.from_text(TEXT)


def test_name_matches_case_and_space_insensitively() -> None:
    assert matches(WL, Payee(name="SOME person ", account_number="111111111", ifsc="ABCD0123456")) == ("watch_list_name",)
    assert matches(WL, Payee(name="Some Persons", account_number="111111111", ifsc="ABCD0123456")) == ()


def test_account_and_vpa_match() -> None:
    assert matches(WL, Payee(name="X", account_number="9876543210", ifsc="ABCD0123456")) == ("watch_list_account",)
    assert matches(WL, Payee(vpa="bad.guy@ybl")) == ("watch_list_vpa",)
    assert matches(WL, Payee(vpa="good.guy@ybl")) == ()


def test_several_rules_are_named_in_order() -> None:
    payee = Payee(name="Ravi  Kumar", account_number="123456789", ifsc="ABCD0123456")
    assert matches(WL, payee) == ("watch_list_name", "watch_list_account")
    assert matches(WL, Payee(name="ravi kumar", vpa="BAD.GUY@ybl")) == ("watch_list_name", "watch_list_vpa")


def test_payer_name_and_missing_payee() -> None:
    assert matches(WL, None, payer_name="  some person") == ("watch_list_name",)
    assert matches(WL, None) == ()
    assert matches(WL, Payee(account_id=uuid.uuid4()), payer_name="Someone Else") == ()
    assert matches(WatchList(), Payee(vpa="bad.guy@ybl"), payer_name="Some Person") == ()


_words = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzäß", min_size=1, max_size=8), min_size=1, max_size=4)
_spaces = st.text(alphabet=" \t", min_size=1, max_size=3)


@given(_words, st.data())
def test_a_listed_name_matches_in_any_case_and_spacing(words: list[str], data: st.DataObject) -> None:
    listed = " ".join(words)
    wl = WatchList.from_text(f"name: {listed}")
    seps = [data.draw(_spaces) for _ in words]
    variant = data.draw(_spaces) + "".join(w.upper() + s for w, s in zip(words, seps, strict=True))
    assert normalize_name(variant) == normalize_name(listed)
    assert matches(wl, None, payer_name=variant) == ("watch_list_name",)


@given(st.lists(st.from_regex(r"[0-9]{9,18}", fullmatch=True), max_size=10), st.from_regex(r"[0-9]{9,18}", fullmatch=True))
def test_an_account_matches_exactly_when_listed(listed: list[str], number: str) -> None:
    wl = WatchList.from_text("\n".join(f"account: {n}" for n in listed))
    payee = Payee(name="X", account_number=number, ifsc="ABCD0123456")
    assert (matches(wl, payee) == ("watch_list_account",)) is (number in listed)
