"""Text from uploads never becomes a spreadsheet formula; plain numbers stay numbers."""

import polars as pl

from pipelines.outputs.safe_text import neutralise


def test_formula_starts_are_quoted_and_plain_numbers_kept():
    f = pl.DataFrame({"v": ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "-1", "12.30", "王伟", None]})
    assert neutralise(f)["v"].to_list() == [
        "'=1+1",
        "'+cmd|' /C calc'!A0",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "-1",
        "12.30",
        "王伟",
        None,
    ]
