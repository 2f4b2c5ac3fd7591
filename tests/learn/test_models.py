import pytest
import torch
from torch import nn

from lifelong.errors import ConfigError
from lifelong.learn import models
from lifelong.learn.models import MLP, build, create_model, for_input, register_model


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the model registry, so test registrations do not leak."""
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    return models.MODELS


class Tabular(nn.Module):
    def __init__(self, in_features: int, n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.Tanh())
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def test_builtins_are_registered_like_plugins() -> None:
    assert models.MODELS["mlp"] is MLP and "cnn" in models.MODELS
    m = create_model("mlp", in_features=30, hidden=[8], n_classes=3)
    assert m.lifelong_spec == {"name": "mlp", "kwargs": {"in_features": 30, "hidden": [8], "n_classes": 3}}
    again = build(m.lifelong_spec)
    assert isinstance(again, MLP) and again.classifier.out_features == 3


def test_a_registered_factory_is_built_by_name_with_its_spec(registry: dict) -> None:
    register_model("tab")(Tabular)

    @register_model("tab-fn")
    def tab_fn(in_features: int, n_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(in_features, n_classes))

    m = create_model("tab", in_features=30, n_classes=3, width=4)
    assert m.lifelong_spec == {"name": "tab", "kwargs": {"in_features": 30, "n_classes": 3, "width": 4}}
    assert build(m.lifelong_spec).classifier.weight.shape == (3, 4)
    f = create_model("tab-fn", in_features=5, n_classes=2)
    assert f.lifelong_spec["name"] == "tab-fn" and f(torch.zeros(1, 5)).shape == (1, 2)
    # for_input: sized like an MLP (in_features, n_classes); kwargs add to them
    assert for_input("tab", (30,), 3).classifier.out_features == 3
    assert for_input("tab", (30,), 3, width=2).body[0].weight.shape == (2, 30)
    with pytest.raises(ConfigError, match=r"cannot take samples of shape \[2,15\]"):
        for_input("tab", (2, 15), 3)  # sized for 30 features, but its forward does not flatten [2, 15]
    with pytest.raises(ConfigError, match="--model-kwargs"):
        for_input("tab", (30,), 3, depth=2)
    register_model("tab")(Tabular)  # the same factory again (a module imported twice) is fine
    with pytest.raises(ConfigError, match="already registered"):
        register_model("tab")(tab_fn)


def test_bad_names_and_kwargs_are_config_errors(registry: dict) -> None:
    register_model("tab")(Tabular)
    with pytest.raises(ConfigError) as e:
        create_model("nope")
    msg = str(e.value)
    assert "'nope'" in msg and "mlp" in msg and "tab" in msg
    assert "--plugin" in msg and "LIFELONG_PLUGINS" in msg and "lifelong.models" in msg
    with pytest.raises(ConfigError, match="JSON"):
        create_model("tab", in_features=30, n_classes=3, width=torch.tensor(4))
    with pytest.raises(ConfigError, match="cannot be built"):
        create_model("tab", in_features=30)  # n_classes missing
    with pytest.raises(ConfigError, match="unknown model"):
        for_input("nope", (4,), 2)
    with pytest.raises(ConfigError, match="needs image inputs"):
        for_input("cnn", (30,), 3)


def test_for_input_lets_explicit_kwargs_repeat_or_override_the_sizes() -> None:
    """`lifelong bench --model-kwargs '{"n_classes": 3}'` passes sizes the data also gives."""
    from lifelong.learn.models import for_input

    model = for_input("mlp", (30,), 3, n_classes=3, hidden=[16])
    assert model.lifelong_spec["kwargs"]["n_classes"] == 3
    assert model.lifelong_spec["kwargs"]["hidden"] == [16]


def test_for_input_passes_only_the_sizes_a_factory_takes(registry: dict) -> None:
    """A user's CNN takes n_classes but no in_features: it is sized, not refused."""

    @register_model("tiny-cnn")
    class TinyCNN(nn.Module):
        def __init__(self, n_classes: int = 10, width: int = 4) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.Flatten())
            self.classifier = nn.Linear(width * 64, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    model = for_input("tiny-cnn", (1, 8, 8), 7)
    assert model.lifelong_spec == {"name": "tiny-cnn", "kwargs": {"n_classes": 7}}
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 7)

    @register_model("any-kw")
    def any_kw(**kw: int) -> nn.Module:  # **kwargs takes every size
        return nn.Linear(kw["in_features"], kw["n_classes"])

    assert for_input("any-kw", (6,), 4).weight.shape == (4, 6)


def test_for_input_probes_a_model_once_for_its_input_and_its_outputs(registry: dict) -> None:
    """Was: for_input ran a forward to see the model takes the samples, then bench/up/simulate ran
    another (check_outputs) to read its width; one probe now answers both."""
    calls: list[int] = []

    @register_model("counted")
    class Counted(Tabular):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return super().forward(x)

    assert for_input("counted", (30,), 3).classifier.out_features == 3
    assert calls == [2]
    with pytest.raises(
        ConfigError, match=r"'counted' has 2 outputs, but the data has labels up to 3 \(4 classes\)"
    ):
        for_input("counted", (30,), 4, n_classes=2)
    with pytest.raises(ConfigError, match=r"'mlp' has 2 outputs, but the data has labels up to 2"):
        for_input("mlp", (30,), 3, n_classes=2)  # the built-ins too


def test_mlp_refuses_a_number_where_the_hidden_widths_go() -> None:
    with pytest.raises(ConfigError, match=r"MLP\(64, n_classes=10\)"):
        MLP(64, 10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "mlp",
            {"in_features": -64},
            "MLP: in_features=-64 is invalid; in_features must be a whole number >= 1",
        ),
        (
            "mlp",
            {"n_classes": 0},
            "MLP: n_classes=0 is invalid; n_classes must be",
        ),  # a model with no outputs
        ("mlp", {"hidden": [16, 0]}, "MLP: hidden must be a list of layer widths"),
        ("mlp", {"in_features": True}, "in_features must be"),
        ("cnn", {"width": -1}, "CNN: width=-1 is invalid; width must be"),
        (
            "cnn",
            {"image_size": 3},
            "CNN: image_size=3 is invalid; image_size must be a whole number >= 4",
        ),  # pooled to nothing
    ],
)
def test_builtin_sizes_below_one_are_config_errors(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        create_model(name, **kwargs)


def test_a_factory_refusing_its_kwargs_is_a_config_error_naming_model_and_kwargs(registry: dict) -> None:
    """ValueError from the user's own checks, RuntimeError from torch (a negative width): one message."""
    register_model("tab")(Tabular)

    @register_model("checked")
    def checked(in_features: int, n_classes: int) -> nn.Module:
        if n_classes < 2:
            raise ValueError("need two classes or more")
        return nn.Linear(in_features, n_classes)

    with pytest.raises(
        ConfigError, match=r"model 'checked' cannot be built with .*'n_classes': 1.*two classes"
    ):
        create_model("checked", in_features=4, n_classes=1)
    with pytest.raises(
        ConfigError, match=r"model 'tab' cannot be built with .*'width': -3.*negative dimension"
    ):
        create_model("tab", in_features=4, n_classes=2, width=-3)


class _EmbedFirst(nn.Module):
    """A text model whose ``features`` starts after the embedding: forward is not classifier(features(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 4)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU())
        self.classifier = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.embed(x)))


@pytest.mark.parametrize("name", ["ncm", "icarl", "multihead"])
def test_methods_reading_model_features_name_the_convention_not_a_shape_error(name) -> None:
    from lifelong.data import from_tensors
    from lifelong.data.scenarios import task_incremental
    from lifelong.errors import StrategyMismatchError
    from lifelong.learn import Learner
    from lifelong.strategies import REGISTRY

    y = torch.arange(40) % 4
    scenario = task_incremental(from_tensors(y[:, None] * 4 + torch.arange(3), y), n_experiences=2)
    with pytest.raises(  # NCM and iCaRL refuse the embedding outside .features when attached
        StrategyMismatchError,
        match=r"forward must be classifier\(features\(x\)\).*inside \.features|lies outside \.features",
    ):
        Learner(_EmbedFirst(), [REGISTRY[name]()], lr=0.1).fit(scenario)  # was torch's "mat1 and mat2 ..."


def test_reading_features_lets_dtype_errors_through() -> None:
    with pytest.raises(RuntimeError, match="dtype"), models.reading_features(nn.Linear(2, 2), "X"):
        raise RuntimeError("expected m1 and m2 to have the same dtype")


class _Bag(nn.Module):
    def __init__(self, n_classes: int, vocab: int = 20) -> None:
        super().__init__()
        self.features = nn.EmbeddingBag(vocab, 4)
        self.classifier = nn.Linear(4, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def test_for_input_takes_a_token_id_model(registry: dict) -> None:
    """Was: the shape probe fed float zeros to the EmbeddingBag, so `up`/`simulate`/`bench` refused a
    token-id model ("expected Long, got FloatTensor ... give --input-shape") that the Learner trains."""
    register_model("bag")(_Bag)
    model = for_input("bag", (12,), 3)
    assert model(torch.tensor([[1.0] * 12])).shape == (1, 3)  # float-carried ids, as the learner sends them


@pytest.mark.parametrize(
    ("fails", "shape"),
    [
        (lambda: nn.Linear(8, 3)(torch.zeros(2, 10)), True),  # mat1 and mat2 shapes cannot be multiplied
        (lambda: nn.Conv2d(3, 4, 3)(torch.zeros(2, 1, 8, 8)), True),  # expected ... to have 3 channels
        (lambda: nn.Conv2d(1, 4, 3)(torch.zeros(2, 10)), True),  # Expected 3D (unbatched) or 4D (batched)
        (lambda: torch.zeros(2, 10).view(2, 3, 3), True),  # shape '[2, 3, 3]' is invalid
        (
            lambda: nn.BatchNorm1d(8)(torch.zeros(2, 10)),
            True,
        ),  # running_mean should contain 10 elements not 8
        (lambda: torch.zeros(2, 10).sum(3), True),  # IndexError: Dimension out of range
        (lambda: nn.Linear(10, 3).double()(torch.zeros(2, 10)), False),  # must have the same dtype
        (lambda: (_ for _ in ()).throw(RuntimeError("CUDA error: out of memory")), False),
        (lambda: (_ for _ in ()).throw(KeyError("size")), False),  # not an error forward's shapes raise
    ],
)
def test_is_shape_error_tells_torchs_shape_errors_from_the_models_own(fails, shape: bool) -> None:
    with pytest.raises(Exception) as err:
        fails()
    assert models.is_shape_error(err.value) is shape


def test_a_model_that_fails_on_any_input_is_not_said_to_want_another_shape(registry: dict) -> None:
    @register_model("broken")
    def broken(in_features: int, n_classes: int) -> nn.Module:
        class Broken(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.classifier = nn.Linear(in_features, n_classes)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                raise RuntimeError("forgot to implement forward")

        return Broken()

    with pytest.raises(ConfigError, match=r"fails on two zero samples .*forgot to implement forward") as err:
        for_input("broken", (30,), 3)
    assert "shape [30] (" not in str(err.value) and "--input-shape" not in str(err.value)
