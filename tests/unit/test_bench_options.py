"""`cbs bench --rounds`: the summary of interleaved rounds, and the option refused where it means nothing."""

from __future__ import annotations

import pytest

from ops import cli
from ops.bench.baseline import rounds_line


def test_the_rounds_line_gives_each_ratio_their_median_and_the_lowest() -> None:
    assert rounds_line([0.91, 0.72, 0.85]) == "ratios by round: 0.91, 0.72, 0.85; median 0.85, lowest 0.72"


@pytest.mark.parametrize("argv", [["bench", "--rounds", "3"], ["bench", "--kind", "payment", "--baseline", "--rounds", "2"]])
def test_rounds_without_a_baseline_of_transfers_is_refused_before_anything_runs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert "--rounds: only with --baseline" in capsys.readouterr().err
