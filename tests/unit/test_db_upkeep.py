"""`bus.db.upkeep_warnings`: a server that never analyzes its tables is named, with the fix."""

from __future__ import annotations

from bus.db import UPKEEP_SETTINGS, upkeep_warnings

ON = {name: "on" for name in UPKEEP_SETTINGS}


def test_a_server_with_its_upkeep_on_has_no_warning() -> None:
    assert upkeep_warnings(ON) == []


def test_autovacuum_off_is_named_with_its_consequence_and_its_fix() -> None:
    (warning,) = upkeep_warnings({**ON, "autovacuum": "off"})
    assert "autovacuum = 'off'" in warning
    assert "never analyzed" in warning and "set autovacuum = on" in warning


def test_each_setting_off_or_unreadable_is_one_warning() -> None:
    assert len(upkeep_warnings({"autovacuum": "off", "track_counts": "off"})) == 2
    # A setting the query did not return (another server's name for it) is not assumed on.
    assert len(upkeep_warnings({"autovacuum": "on"})) == 1
