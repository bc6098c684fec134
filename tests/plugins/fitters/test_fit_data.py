"""Loading data for the laws: dicts, DataFrames and CSV files, with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from xent_fitters.data import as_float_array, load_columns
from xent_fitters.datasets import CHINCHILLA_CSV

from xent_core import BadInputError


def test_csv_dataframe_and_dict_give_the_same_columns():
    pd = pytest.importorskip("pandas", reason="pandas is a dev dependency")
    mapping = {"N": "Model Size", "C": "Training FLOP"}
    from_csv = load_columns(CHINCHILLA_CSV, ("N", "C", "loss"), columns=mapping)
    frame = pd.read_csv(CHINCHILLA_CSV)
    from_df = load_columns(frame, ("N", "C", "loss"), columns=mapping)
    from_dict = load_columns(
        {k: frame[k].tolist() for k in frame}, ("N", "C", "loss"), columns=mapping
    )
    for k in ("N", "C", "loss"):
        np.testing.assert_array_equal(from_csv[k], frame[mapping.get(k, k)].to_numpy(float))
        np.testing.assert_array_equal(from_df[k], from_csv[k])
        np.testing.assert_array_equal(from_dict[k], from_csv[k])
        assert from_csv[k].dtype == np.float64


def test_optional_columns_and_positivity_per_column():
    out = load_columns(
        {"H": [-0.5, 0.1], "R": [0.2, 0.3]}, ("H",), optional=("R", "Z"), positive=("R",)
    )
    assert set(out) == {"H", "R"}
    with pytest.raises(BadInputError, match=r"column 'R' must be > 0.*row 1: -0.3"):
        load_columns({"H": [1.0, 2.0], "R": [0.2, -0.3]}, ("H", "R"), positive=("R",))


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ({"N": [1.0, 2.0]}, {}, r"missing column\(s\) loss; columns found: \['N'\]"),
        (
            {"size": [1.0], "loss": [2.0]},
            {"columns": {"N": "params"}},
            r"missing column\(s\) N \(as 'params'\)",
        ),
        ({"N": [1.0], "loss": [1.0]}, {"columns": {"X": "N"}}, "unknown input"),
        ({"N": ["a", "b"], "loss": [1.0, 2.0]}, {}, "not numeric"),
        ({"N": [[1.0, 2.0]], "loss": [1.0]}, {}, "must be 1-D"),
        ({"N": [1.0, 2.0, 3.0], "loss": [1.0, 2.0]}, {}, "different lengths"),
        ({"N": [1.0, np.inf], "loss": [1.0, 2.0]}, {}, r"1 NaN/inf value\(s\) \(first at row 1\)"),
        ({"N": [1.0, 0.0], "loss": [1.0, 2.0]}, {}, "must be > 0"),
        ({"N": [1.0, 2.0], "loss": [1.0, 2.0]}, {"min_rows": 4}, "at least 4 are needed"),
        (42, {}, "dict of columns, a pandas DataFrame or a CSV path"),
    ],
)
def test_errors_say_what_is_wrong(data, kwargs, message):
    with pytest.raises(BadInputError, match=message):
        load_columns(data, ("N", "loss"), **kwargs)


def test_csv_errors(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        load_columns(tmp_path / "none.csv", ("N",))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BadInputError, match="is empty"):
        load_columns(empty, ("N",))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("N,loss\n1,2\n3\n")
    with pytest.raises(BadInputError, match="line 3 has 1 fields"):
        load_columns(ragged, ("N", "loss"))
    holes = tmp_path / "holes.csv"
    holes.write_text("N,loss\n1,2\n3,\n")
    with pytest.raises(BadInputError, match="'loss' has 1 NaN"):
        load_columns(holes, ("N", "loss"))


def test_as_float_array_scalar():
    assert as_float_array("x", 3).tolist() == [3.0]
