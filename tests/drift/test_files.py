"""Reading CSV and Parquet by column (``modelops.drift.files``): same results as pandas, bounded memory."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops import drift
from modelops.drift import comparison, data, files


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)

    def frame(n: int, shift: float, other: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(shift, size=n),
                "ints": rng.integers(0, 9, n),
                "colour": rng.choice(["red", "blue", other], n),
                "holes": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
                "ties": np.round(rng.normal(size=n), 1),
                **{f"g{i}": rng.normal(shift * i, size=n) for i in range(8)},
            }
        )

    return frame(3000, 0.0, "green"), frame(2500, 0.1, "black")


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("drift-files")
    reference, current = _frames()
    paths = {}
    for name, frame in (("reference", reference), ("current", current)):
        paths[f"{name}.parquet"] = directory / f"{name}.parquet"
        paths[f"{name}.csv"] = directory / f"{name}.csv"
        frame.to_parquet(paths[f"{name}.parquet"])
        frame.to_csv(paths[f"{name}.csv"], index=False)
    return {"paths": paths, "reference": reference, "current": current}


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
@pytest.mark.parametrize("method", drift.METHODS)
def test_lazy_table_scores_exactly_like_pandas(tables: dict[str, Any], suffix: str, method: str) -> None:
    paths = tables["paths"]
    features = None
    if method in {"ks", "wasserstein"}:  # numeric features only
        features = [name for name in tables["reference"] if name != "colour"]
    if suffix == "parquet":
        expected_ref = pd.read_parquet(paths["reference.parquet"])
        expected_cur = pd.read_parquet(paths["current.parquet"])
    else:
        expected_ref, expected_cur = pd.read_csv(paths["reference.csv"]), pd.read_csv(paths["current.csv"])
    expected = drift.compare(expected_ref, expected_cur, method=method, features=features)
    reference = files.load_table(str(paths[f"reference.{suffix}"]), "reference")
    current = files.load_table(str(paths[f"current.{suffix}"]), "current")
    assert isinstance(reference, files.Table)
    assert list(reference) == list(tables["reference"].columns)
    got = drift.compare(reference, current, method=method, features=features)
    assert got.to_dict() == expected.to_dict()
    # The missing values were seen and dropped, as pandas reads them.
    assert got.feature("holes").note is not None
    assert "missing" in (got.feature("holes").note or "")


def test_parquet_kinds_nulls_dictionaries_and_index_match_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "nullable_int": pd.array([1, None, 3, 4], dtype="Int64"),
            "category": pd.Categorical(["a", "b", "a", None]),
            "flag": [True, False, True, True],
            "text": ["x", None, "y", "z"],
            "number": [0.5, 1.5, np.nan, 2.5],
        },
        index=pd.Index([10, 11, 12, 13], name="row_id"),
    )
    path = tmp_path / "kinds.parquet"
    frame.to_parquet(path)
    table = files.load_table(str(path), "reference")
    read = pd.read_parquet(path)
    assert list(table) == list(read.columns)  # the pandas index is not a feature
    for name in read.columns:
        assert data.column_kind(table[name]) == data.column_kind(read[name]), name
    values, dropped = data.numeric_values(table["nullable_int"], "nullable_int", "reference")
    assert values.tolist() == [1.0, 3.0, 4.0]
    assert dropped == 1
    for name, expected in (("category", {"a": 2, "b": 1}), ("text", {"x": 1, "y": 1, "z": 1})):
        counts, missing = data.category_counts(table[name])
        assert counts == expected
        assert missing == 1
        assert (counts, missing) == data.category_counts(read[name])


def test_csv_missing_value_strings_and_duplicate_headers(tmp_path: Path) -> None:
    path = tmp_path / "nulls.csv"
    path.write_text("x,c\n1.5,red\nNA,None\n,blue\n2.5,\nnan,red\n")
    table = files.load_table(str(path), "current")
    values, dropped = data.numeric_values(table["x"], "x", "current")
    assert values.tolist() == [1.5, 2.5]
    assert dropped == 3
    counts, missing = data.category_counts(table["c"])
    assert counts == {"red": 2, "blue": 1}
    assert missing == 2
    duplicate = tmp_path / "duplicate.csv"
    duplicate.write_text("x,x\n1,2\n")
    with pytest.raises(files.InputError, match=r"cannot read current file .*duplicate column names 'x'"):
        files.load_table(str(duplicate), "current")


def test_a_broken_parquet_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(files.InputError, match=r"cannot read reference file .*broken\.parquet"):
        files.load_table(str(path), "reference")


class _TrackedColumn:
    """A column whose arrays are counted while alive, to see how many the comparison holds."""

    def __init__(self, values: np.ndarray[Any, Any], tracker: dict[str, int]) -> None:
        self.values = values
        self.dtype = values.dtype
        self.tracker = tracker

    def to_numpy(self, dtype: Any = None, na_value: Any = None) -> np.ndarray[Any, Any]:
        tracker = self.tracker
        tracker["peak"] = max(tracker["peak"], tracker["alive"])
        array = np.array(self.values, dtype=dtype)  # a fresh array, as decoding a file gives
        tracker["alive"] += 1
        tracker["reads"] += 1
        weakref.finalize(array, lambda: tracker.__setitem__("alive", tracker["alive"] - 1))
        return array


def test_columns_are_released_after_copying_into_their_chunk() -> None:
    rng = np.random.default_rng(3)
    columns = 4 * comparison.COLUMN_CHUNK + 1
    reference = {f"f{i}": rng.normal(size=2000) for i in range(columns)}
    current = {f"f{i}": rng.normal(1.0 if i % 5 == 0 else 0.0, size=1500) for i in range(columns)}
    tracker = {"alive": 0, "peak": 0, "reads": 0}
    got = drift.compare_methods(
        {name: _TrackedColumn(values, tracker) for name, values in reference.items()},
        {name: _TrackedColumn(values, tracker) for name, values in current.items()},
        methods=("psi", "wasserstein"),
    )
    assert tracker["reads"] == 2 * columns
    # When a column is read, at most the other side of the same feature is still alive.
    assert tracker["peak"] <= 1
    assert tracker["alive"] == 0
    expected = drift.compare_methods(reference, current, methods=("psi", "wasserstein"))
    assert {m: r.to_dict() for m, r in got.items()} == {m: r.to_dict() for m, r in expected.items()}
    assert got["psi"].drifted_features == [f"f{i}" for i in range(0, columns, 5)]
