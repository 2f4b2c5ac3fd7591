import warnings
from pathlib import Path

import numpy as np
import pytest

from lifelong.data.files import Table, load_table
from lifelong.errors import DataError
from tests.data._tabular import frame, tabular


def test_csv_with_string_labels_and_a_domain_column(tmp_path: Path) -> None:
    df = frame()
    df.to_csv(tmp_path / "plants.csv", index=False)
    t = load_table(tmp_path / "plants.csv", label_column="species", domain_column="site")
    assert isinstance(t, Table) and t.x.shape == (300, 30) and t.x.dtype == np.float32
    assert t.y.dtype == np.int64 and t.classes == [0, 1, 2]
    assert t.class_names == ["setosa", "versicolor", "virginica"]
    assert t.feature_names == [f"f{i}" for i in range(30)]
    assert list(dict.fromkeys(t.domains.tolist())) == ["north", "south"]
    assert np.allclose(t.x, df[t.feature_names].to_numpy(), atol=1e-5)
    assert (np.array(t.class_names)[t.y] == df["species"].to_numpy()).all()
    data = t.to_dataset()
    assert data.input_shape == (30,) and len(data) == 300 and data.classes == [0, 1, 2]
    assert data.feature_names == tuple(t.feature_names)  # a learner trained on it matches frames by name


def test_parquet_and_npz_read_the_same_samples(tmp_path: Path) -> None:
    x, y = tabular()
    import pandas as pd

    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)]).assign(label=y)
    df.to_parquet(tmp_path / "t.parquet")
    np.savez(tmp_path / "t.npz", x=x, y=y, domain=np.arange(300) % 2)
    p, z = load_table(tmp_path / "t.parquet"), load_table(tmp_path / "t.npz")
    assert np.array_equal(p.x, z.x) and np.array_equal(p.y, z.y) and p.class_names is None
    assert z.domains.tolist()[:3] == [0, 1, 0] and p.domains is None
    assert np.array_equal(z.x, x.astype(np.float32))


def test_labels_written_as_whole_numbers_are_those_integers_in_every_file_type(tmp_path: Path) -> None:
    """Was: a Parquet or .npz label column of "2", "10", "1" became classes by text order ("1" -> 0,
    "10" -> 1, "2" -> 2) while the same column in a CSV (read by pandas as numbers) stayed 1, 2, 10."""
    import pandas as pd

    x, y = tabular()
    text = np.array(["2", "10", "1"])[y % 3]
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)]).assign(label=text)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    np.savez(tmp_path / "t.npz", x=x, y=text)
    for name in ("t.csv", "t.parquet", "t.npz"):
        t = load_table(tmp_path / name)
        assert t.class_names is None and t.classes == [1, 2, 10], name
        assert t.y.tolist() == [int(v) for v in text], name
    # names that are not all plain whole numbers stay names, numeric-looking ones ordered by value
    df.assign(label=np.array(["2", "10", "x1"])[y % 3]).to_parquet(tmp_path / "mixed.parquet")
    t = load_table(tmp_path / "mixed.parquet")
    assert t.class_names == ["2", "10", "x1"] and t.classes == [0, 1, 2]
    df.assign(label=np.array(["07", "10", "9"])[y % 3]).to_parquet(tmp_path / "zeros.parquet")
    assert load_table(tmp_path / "zeros.parquet").class_names == ["07", "9", "10"]


def test_every_malformation_is_a_data_error_naming_it(tmp_path: Path) -> None:
    df = frame(60)
    with pytest.raises(DataError, match="no such file"):
        load_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="unsupported file type"):
        load_table(tmp_path / "data.xlsx")
    df.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataError, match=r"no label column 'label'.*'species'"):
        load_table(tmp_path / "a.csv")
    with pytest.raises(DataError, match="feature column 'site' is not numeric"):
        load_table(tmp_path / "a.csv", label_column="species")
    with pytest.raises(DataError, match="no domain column 'region'"):
        load_table(tmp_path / "a.csv", label_column="species", domain_column="region")
    holes = df.copy()
    holes.loc[3, "f7"] = np.nan
    holes.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"\['f7'\] hold NaN"):
        load_table(tmp_path / "b.csv", label_column="species", domain_column="site")
    no_label = df.copy()
    no_label["species"] = no_label["species"].where(no_label.index != 5)
    no_label.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match="missing"):
        load_table(tmp_path / "c.csv", label_column="species", domain_column="site")
    np.savez(tmp_path / "d.npz", inputs=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"missing array\(s\) \['x'\]"):
        load_table(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", x=np.full((3, 2), np.nan), y=np.zeros(3, dtype=int))
    with pytest.raises(DataError, match="NaN"):
        load_table(tmp_path / "e.npz")
    (tmp_path / "f.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot parse"):
        load_table(tmp_path / "f.parquet")


def test_one_column_cannot_be_both_the_label_and_the_domain(tmp_path: Path) -> None:
    """`bench --scenario domain --domain-column species --label-column species` ran, one class per domain,
    and reported ACC for an experiment that had nothing to learn across domains."""
    frame().to_csv(tmp_path / "plants.csv", index=False)
    with pytest.raises(DataError, match="'species' is given as both the label and the domain column"):
        load_table(tmp_path / "plants.csv", label_column="species", domain_column="species")
    with pytest.raises(DataError, match="'site' is given as both the domain and the task column"):
        load_table(tmp_path / "plants.csv", label_column="species", domain_column="site", task_column="site")
    assert (
        load_table(tmp_path / "plants.csv", label_column="species", domain_column="site").domains is not None
    )


def test_a_stray_text_cell_in_a_numeric_column_is_quoted_with_its_row(tmp_path: Path) -> None:
    """The message quoted the column's first value (a valid number) as the example."""
    df = frame(40)
    df["f2"] = df["f2"].astype(object)
    df.loc[7, "f2"] = "hello"
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        DataError, match=r"'f2' holds 1 cells that are not numbers, the first 'hello' in row 7 "
    ):
        load_table(tmp_path / "t.csv", "species", "site")


def test_columns_that_are_not_features_are_dropped_by_name(tmp_path: Path) -> None:
    """Was: an id or timestamp column became a feature silently, and a text one could only be
    removed by editing the file (the error said "drop it")."""
    df = frame(40)
    df.insert(0, "row id", np.arange(40))
    df["note"] = "free text"
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"feature column 'note' is not numeric .*--drop-columns"):
        load_table(tmp_path / "t.csv", "species", "site")
    table = load_table(tmp_path / "t.csv", "species", "site", drop_columns=["row id", "note"])
    assert table.feature_names == [f"f{i}" for i in range(30)] and table.x.shape == (40, 30)
    for drop, words in (
        (["nope"], r"no column\(s\) \['nope'\] to drop"),
        (["species"], "'species' is the label"),
    ):
        with pytest.raises(DataError, match=words):
            load_table(tmp_path / "t.csv", "species", "site", drop_columns=drop)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dropped, the id is no longer a feature to warn of
        load_table(tmp_path / "t.csv", "species", "site", drop_columns=["row id", "note"])
    df.drop(columns="note").to_csv(tmp_path / "ids.csv", index=False)
    with pytest.warns(UserWarning, match=r"column\(s\) \['row id'\] number the rows.*--drop-columns"):
        load_table(tmp_path / "ids.csv", "species", "site")  # was: read as a feature, silently
    x, y = tabular(20)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    with pytest.raises(DataError, match="an .npz has no named columns to drop"):
        load_table(tmp_path / "t.npz", drop_columns=["x0"])


def test_a_dataframe_is_read_as_its_csv_would_be_and_a_scenario_given_one_says_so(tmp_path: Path) -> None:
    """A frame given to a scenario raised pandas' raw KeyError(0) (read as a torch dataset)."""
    from lifelong.data.scenarios import class_incremental, domains_from_column
    from lifelong.errors import ScenarioError

    df = frame(40)
    df.to_csv(tmp_path / "t.csv", index=False)
    table = load_table(df, "species", "site")
    on_disk = load_table(tmp_path / "t.csv", "species", "site")
    assert table.feature_names == on_disk.feature_names and np.array_equal(table.x, on_disk.x)
    assert len(domains_from_column(table).experiences) == len(set(df["site"]))
    with pytest.raises(ScenarioError, match=r"a pandas DataFrame does not say which column is the label"):
        class_incremental(df)


def test_a_frame_from_an_array_names_its_label_by_number_and_keeps_its_columns() -> None:
    """Columns 0..D-1: label_column=3 was refused while the message listed '3'; the caller's frame had
    its column labels rewritten to text."""
    import pandas as pd

    x, y = tabular()
    df = pd.DataFrame(x[:, :3]).assign(**{"3": y})
    df.columns = [0, 1, 2, 3]
    for label in (3, "3"):
        t = load_table(df, label_column=label)
        assert t.x.shape == (len(y), 3) and t.y.tolist() == y.tolist()
    assert list(df.columns) == [0, 1, 2, 3]


def test_a_frame_with_a_column_name_twice_is_refused() -> None:
    import pandas as pd

    x, y = tabular()
    df = pd.DataFrame(x[:, :2], columns=["a", "a"]).assign(label=y)
    with pytest.raises(DataError, match=r"columns \['a'\] appear more than once"):
        load_table(df)


def test_task_columns_follow_the_labels_rule_and_keep_their_names() -> None:
    """A -1 renumbered every task (the user's task 0 became 1); whole floats and numeric text were
    renumbered too, while the learner read t=7.0 as 7; names were numbered without a record."""
    pd = pytest.importorskip("pandas", reason="frames need pandas: pip install 'lifelong[data]'")
    base = pd.DataFrame({"f": np.arange(8.0), "label": [0, 1] * 4})
    for tasks in ([3, 3, 3, 3, 7, 7, 7, 7], [3.0] * 4 + [7.0] * 4, ["3"] * 4 + ["7"] * 4):
        table = load_table(base.assign(task=tasks), task_column="task")
        assert sorted(set(table.tasks.tolist())) == [3, 7] and table.task_names is None
    named = load_table(base.assign(task=["north"] * 4 + ["east"] * 4), task_column="task")
    assert named.task_names == ["east", "north"] and named.tasks.tolist() == [1] * 4 + [0] * 4
    with pytest.raises(DataError, match="task ids must be >= 0, found -1"):
        load_table(base.assign(task=[-1, 0] * 4), task_column="task")
    with pytest.raises(DataError, match="task ids must be integers or names"):
        load_table(base.assign(task=[0.5] * 8), task_column="task")


@pytest.mark.parametrize("column", ["task", "site", "label"])
def test_missing_cells_of_nullable_columns_are_refused(column: str) -> None:
    """pandas' NA (convert_dtypes, nullable Parquet) became a task or a class named '<NA>', or a
    TypeError ('boolean value of NA is ambiguous') for a domain column."""
    pd = pytest.importorskip("pandas", reason="frames need pandas: pip install 'lifelong[data]'")
    frame = pd.DataFrame({"f": np.arange(8.0), "label": ["a", "b"] * 4, "site": ["n", "s"] * 4,
                          "task": ["x"] * 4 + ["y"] * 4}).convert_dtypes()  # fmt: skip
    frame.loc[5, column] = pd.NA
    with pytest.raises(DataError, match="missing .*row 5"):
        load_table(frame, domain_column="site", task_column="task")


def test_a_numeric_target_is_refused_as_regression(tmp_path: Path) -> None:
    """scikit-learn's diabetes target was read as 214 one-row classes and failed later by accident."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    data.to_csv(tmp_path / "diabetes.csv", index=False)
    with pytest.raises(
        DataError, match=r"label column 'target': 214 distinct numbers.*regression.*pandas.cut"
    ):
        load_table(tmp_path / "diabetes.csv", label_column="target")
    data["target"] = pd.cut(data["target"], 4, labels=False)  # binned: classes
    data.to_csv(tmp_path / "binned.csv", index=False)
    assert len(load_table(tmp_path / "binned.csv", label_column="target").classes) == 4


def test_values_beyond_float32_are_named_not_called_infinite(tmp_path: Path) -> None:
    """1e300 overflowed in the float32 cast (numpy's RuntimeWarning) and was then reported as infinite."""
    import pandas as pd

    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"]).assign(
        label=rng.integers(0, 2, 60)
    )
    data.loc[5, "b"] = 1e300
    data.to_csv(tmp_path / "big.csv", index=False)
    with pytest.raises(DataError, match=r"\['b'\] hold values beyond float32's range \(largest 1e\+300"):
        load_table(tmp_path / "big.csv")
    data.loc[5, "b"] = np.nan
    data.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(DataError, match=r"\['b'\] hold NaN"):
        load_table(tmp_path / "nan.csv")
    np.savez(tmp_path / "big.npz", x=np.full((4, 2), 1e39), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="x hold values beyond float32's range"):
        load_table(tmp_path / "big.npz")


def test_a_tables_repr_gives_sizes_not_values() -> None:
    table = Table(np.zeros((1000, 3), np.float32), np.zeros(1000, int), None, ["a", "b", "c"], [0], ["cat"])
    assert repr(table) == "Table('table': 1000 samples of 3, 1 classes ['cat'])"


def test_uint8_images_in_an_npz_are_read_as_pixels_over_255(tmp_path: Path) -> None:
    """Was: read as 0-255 floats, so `up --bootstrap images.npz` of a CNN diverged, where the same pixels
    through from_tensors (scaled by 1/255) trained (a user trial)."""
    x = np.random.default_rng(0).integers(0, 256, size=(20, 1, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(20) % 2)
    table = load_table(tmp_path / "img.npz")
    assert table.x.dtype == np.float32 and table.x.shape == (20, 1, 4, 4)
    assert np.allclose(table.x, x / 255) and table.x.max() <= 1.0


def test_a_file_that_is_no_npz_and_a_directory_say_so(tmp_path: Path) -> None:
    """A fuzzing trial: "PK junk" was read as a pickle ("load it unsafely using allow_pickle="), and a
    directory was an "unsupported file type ''"."""
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"PK junk")
    with pytest.raises(DataError, match="is not an .npz file.*np.savez") as err:
        load_table(fake)
    assert "pickle" not in str(err.value)
    (tmp_path / "adir").mkdir()
    with pytest.raises(DataError, match="adir is a directory; give a data file in it"):
        load_table(tmp_path / "adir")


def test_an_npz_refuses_column_names_it_cannot_have(tmp_path: Path) -> None:
    """task_column= on an .npz was ignored: tasks=None, then "no task ids; name a task column" (a trial)."""
    np.savez(
        tmp_path / "m.npz",
        x=np.zeros((4, 3), np.float32),
        y=np.array([0, 1, 0, 1]),
        task=np.array([0, 0, 1, 1]),
    )
    with pytest.raises(DataError, match="task_column='machine'.*arrays named 'task' and 'domain'"):
        load_table(tmp_path / "m.npz", task_column="machine")
    assert load_table(tmp_path / "m.npz").tasks is not None
