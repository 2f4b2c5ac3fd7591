"""A deployment's contract: its label space (with names), input shape and standardisation, and the
refusals that name what is wrong (through the HTTP API in test_app.py)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lifelong.errors import CheckpointError, DataError
from lifelong.system.contract import Contract

X = np.arange(12, dtype=np.float32).reshape(4, 3)
NAMED = Contract.fit(
    X, np.array([0, 1, 2, 1]), class_names=["cat", "dog", "owl"], feature_names=["a", "b", "c"]
)


def test_fit_reads_the_class_set_shape_and_standardisation() -> None:
    c = Contract.fit(X, np.array([0, 2, 1, 2]), standardize=True)
    assert (c.classes, c.input_shape, c.class_names) == ((0, 1, 2), (3,), None)
    z = c.transform(X)
    assert (
        z.dtype == np.float32 and np.allclose(z.mean(0), 0, atol=1e-6) and np.allclose(z.std(0), 1, atol=1e-5)
    )
    assert Contract.fit(np.ones((3, 2)), None, n_classes=4, standardize=True).std == (
        1.0,
        1.0,
    )  # constant: kept
    with pytest.raises(DataError, match="give n_classes"):
        Contract.fit(X, None)


def test_raw_columns_stay_as_sent_when_the_rest_is_standardised() -> None:
    """A rollout trial's store_id code (0-4) for an embedding became -1 .. 1 under --standardize: five
    stores in two buckets, said nowhere."""
    c = Contract.fit(X, np.array([0, 1, 2, 1]), standardize=True, feature_names=["a", "store", "c"],
                     raw_columns=["store"])  # fmt: skip
    z = c.transform(X)
    assert np.array_equal(z[:, 1], X[:, 1]) and np.allclose(z[:, [0, 2]].mean(0), 0, atol=1e-6)
    with pytest.raises(
        DataError, match="--standardize-exclude names 'shop', not a feature column.*a, store, c"
    ):
        Contract.fit(
            X, None, n_classes=3, standardize=True, feature_names=["a", "store", "c"], raw_columns=["shop"]
        )
    with pytest.raises(DataError, match="give standardize"):
        Contract.fit(X, None, n_classes=3, feature_names=["a", "store", "c"], raw_columns=["store"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ()}, "class labels >= 0"),
        ({"classes": (0, -1)}, "class labels >= 0"),
        ({"classes": (0, 1), "class_names": ("a",)}, "1 class names for 2 classes"),
        ({"classes": (0,), "mean": (0.0,)}, "mean has 1 values for 3 input features"),
    ],
)
def test_an_inconsistent_contract_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Contract(input_shape=(3,), **{"classes": (0,), **kwargs})


def test_labels_are_indices_or_names_and_the_refusal_lists_the_valid_ones() -> None:
    assert NAMED.check_labels([2, "cat", np.int64(1)]) == [2, 0, 1]
    with pytest.raises(
        DataError, match=r"'eel' is not a class .* 0 \(cat\), 1 \(dog\), 2 \(owl\).*--allow-new"
    ):
        NAMED.check_labels(["eel"])
    with pytest.raises(DataError, match="label 3 is not in this deployment's label space"):
        NAMED.check_labels([3])
    for bad in (True, 1.5):
        with pytest.raises(DataError, match="a label is a class index"):
            NAMED.check_labels([bad])
    with pytest.raises(DataError, match=r"a label is missing \(None\)"):
        NAMED.check_labels([None])
    unnamed = Contract.fit(X, np.array([0, 1, 1, 0]))
    assert unnamed.check_labels(["1"]) == [1]  # a whole number written as text, as in a bootstrap file
    with pytest.raises(DataError, match="classes have none; send the class index"):
        unnamed.check_labels(["cat"])
    with pytest.raises(
        DataError, match=r"label '2' is text.*send the index as a number \(2\) or the name \('owl'\)"
    ):
        NAMED.check_labels(["2"])  # was: "'2' is not a class ...; valid labels: ... 2 (owl)"
    with pytest.raises(DataError, match=r"'eeeee.*\.\.\. \(100002 characters\) is not a class") as e:
        NAMED.check_labels(["e" * 100_000])
    assert len(str(e.value)) < 400  # client input is echoed, bounded


def test_new_classes_take_the_next_indices_within_a_bound() -> None:
    growing = Contract.fit(X, np.array([0, 1, 1, 0]), class_names=["cat", "dog"], allow_new_classes=True)
    assert growing.check_labels([2, 5], max_new=4) == [2, 5]
    with pytest.raises(DataError, match="too far past this deployment's 2 classes"):
        growing.check_labels([6], max_new=4)
    assert growing.new_class_names(["owl", "cat", "eel", 3]) == ["eel", "owl"]
    assert growing.check_labels(["owl"], names={"owl": 2}) == [2]  # the store's index for the name
    grown = growing.with_classes(4, names={"owl": 2})
    assert grown.class_names == ("cat", "dog", "owl", "3") and grown.class_name(3) == "3"
    with pytest.raises(DataError, match="a class name has 1 to"):
        growing.new_class_names(["x" * 201])
    # names that would each become a class of their own, for ever (an operator trial found all three)
    with pytest.raises(
        DataError, match=r"label '1' is text.*send the index as a number \(1\) or the name \('dog'\)"
    ):
        growing.new_class_names(["1"])
    with pytest.raises(DataError, match="'dog ' has leading or trailing spaces; send 'dog'"):
        growing.new_class_names(["dog "])
    with pytest.raises(DataError, match="'DOG' differs from this deployment's class 'dog' only in case"):
        growing.new_class_names(["DOG"])
    assert growing.new_class_names(["7"]) == ["7"]  # a number no class has is a name like any other
    # a fuzzing trial: each of these became a new class beside class 1 (a JSON 1.0 is class 1 itself)
    for text in ("01", "+1", "1.0", "1e0", "\uff11", "\u0661", " 1"):
        with pytest.raises(DataError, match=r"is text.*send the index as a number \(1\)"):
            growing.new_class_names([text])
    for text in ("ten\u200b", "\ufeff", "\u202eevil", "x\ny", "\t"):  # cannot be told apart, or read
        with pytest.raises(DataError, match="has characters that do not print"):
            growing.new_class_names([text])
    assert growing.new_class_names(["NaN", "1.5", "null"]) == ["1.5", "NaN", "null"]  # no index: names
    # and against the classes named since the bootstrap, and each other (only the bootstrap's were checked)
    added = {"malbec": 2}
    assert growing.new_class_names(["malbec", "eel"], added) == ["eel"]
    with pytest.raises(
        DataError, match="'MALBEC' differs from this deployment's class 'malbec' only in case"
    ):
        growing.new_class_names(["MALBEC"], added)
    with pytest.raises(DataError, match=r"label '2' is text.*\(2\) or the name \('malbec'\)"):
        growing.new_class_names(["2"], added)
    with pytest.raises(DataError, match="'tempranillo' differs from this request's class 'Tempranillo'"):
        growing.new_class_names(["Tempranillo", "tempranillo"])
    composed, combining = "ros\u00e9", "rose\u0301"  # one rosé, two ways of writing it
    with pytest.raises(DataError, match="only in case or Unicode form"):
        growing.new_class_names([combining], {composed: 2})


def test_inputs_are_checked_against_the_shape_and_a_flat_row_is_reshaped() -> None:
    images = Contract(classes=(0, 1), input_shape=(1, 2, 2))
    assert images.check_inputs(np.zeros((3, 4), np.float32)).shape == (3, 1, 2, 2)
    with pytest.raises(
        DataError, match=r"shape \[1, 2, 2\] \(4 features\) or be a flat list of 4 numbers, got \[5\]"
    ):
        images.check_inputs(np.zeros((3, 5), np.float32))
    with pytest.raises(DataError, match=r"got \[2, 2\]; the inputs hold one sample's shape: send a list"):
        images.check_inputs(np.zeros((1, 2, 2), np.float32))  # one image, not wrapped in a list


def test_named_features_are_taken_in_the_contracts_order() -> None:
    assert NAMED.named_rows([{"c": 3, "a": 1, "b": 2}]) == [[1, 2, 3]]
    with pytest.raises(DataError, match="sample 0 holds 'x' in feature 'b'"):
        NAMED.named_rows([{"a": 1, "b": "x", "c": 3}])
    with pytest.raises(DataError, match=r"holds 'xxxx.*\(1000002 characters\) in feature 'b'"):
        NAMED.named_rows([{"a": 1, "b": "x" * 1_000_000, "c": 3}])
    with pytest.raises(DataError, match=r"has unknown 'yyyy.*\(1000002 characters\)"):
        NAMED.named_rows([{"a": 1, "b": 2, "c": 3, "y" * 1_000_000: 4}])
    with pytest.raises(DataError, match="sample 1 is not an object of named features"):
        NAMED.named_rows([{"a": 1, "b": 2, "c": 3}, [1, 2, 3]])
    with pytest.raises(DataError, match="no feature names"):
        Contract.fit(X, np.array([0, 1, 1, 0])).named_rows([{"a": 1}])
    assert NAMED.named_rows([[1, 2, 3]]) == [[1, 2, 3]]  # rows pass as they are


def test_a_contract_round_trips_and_a_damaged_one_is_a_checkpoint_error(tmp_path: Path) -> None:
    NAMED.save(tmp_path)
    assert Contract.load(tmp_path) == NAMED
    assert Contract.load(tmp_path / "missing") is None  # an artifact from before contracts
    (tmp_path / "contract.json").write_text('{"classes": [0], "input_shape": [3], "colour": 1}')
    with pytest.raises(CheckpointError, match="invalid deployment contract"):
        Contract.load(tmp_path)
    (tmp_path / "contract.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not a valid contract"):
        Contract.load(tmp_path)


def test_breaks_names_what_the_clients_of_a_contract_would_see_change() -> None:
    base = Contract(
        classes=(0, 1, 2), input_shape=(3,), class_names=("a", "b", "c"), feature_names=("x", "y", "z")
    )
    assert base.breaks(replace(base, classes=(0, 1, 2, 3), class_names=("a", "b", "c", "d"), mean=(0.0,) * 3,
                               std=(1.0,) * 3)) == []  # a new class, standardisation: the deployment's own  # fmt: skip
    assert base.breaks(replace(base, feature_names=("x", "z", "y"))) == ["the features in another order"]
    assert base.breaks(Contract(classes=(0, 1), input_shape=(2,), class_names=("a", "B"), feature_names=("x", "q"))) == [
        "inputs of shape [2] instead of [3]", "features ['y', 'z'] no longer taken", "class 2 (c) dropped",
        "classes renamed: 1 ('b' -> 'B')"]  # fmt: skip


def test_a_missing_label_among_given_ones_says_how_to_send_unlabelled_samples() -> None:
    """It read "a label is a class index (or a class name), got None"."""
    with pytest.raises(DataError, match=r"a label is missing \(None\).*in a call of their own"):
        Contract((0, 1, 2), (4,)).check_labels([1, None])


def test_an_image_deployment_refuses_pixels_in_other_units() -> None:
    """Was: 0-255 pixels sent to a deployment trained on 0-1 were answered (accuracy barely moved), stored and
    trained on: every candidate was refused (flip rate 0.84) and new classes were never learned (a trial)."""
    images = np.random.default_rng(0).random((30, 1, 4, 4)).astype(np.float32)  # pixels in [0, 1]
    contract = Contract.fit(images, np.arange(30) % 2)
    assert contract.value_range is not None and 0 <= contract.value_range[0] < contract.value_range[1] <= 1
    contract.check_scale(images * 0.5)  # darker
    contract.check_scale(np.clip(images * 1.5, 0, 1))  # brighter
    with pytest.raises(DataError, match=r"sample 0 holds .*bootstrap pixels lay in \[0.*send x / 255"):
        contract.check_scale(images[:2] * 255)
    assert Contract.from_dict(contract.to_dict()) == contract  # saved with the version
    # written only where recorded: an older lifelong refused the unknown field (a code rollback)
    assert "value_range" not in Contract.fit(images.reshape(30, -1), np.arange(30) % 2).to_dict()
    assert Contract.fit(images.reshape(30, -1), np.arange(30) % 2).value_range is None  # features: no range
    assert (
        Contract.fit(images.reshape(30, 4, 4), np.arange(30) % 2).value_range is None
    )  # nor a [T, F] series
