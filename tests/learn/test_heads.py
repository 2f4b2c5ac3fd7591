import pytest
import torch
from torch import nn

from lifelong.errors import ConfigError
from lifelong.learn.heads import grow_classifier, n_outputs
from lifelong.learn.models import MLP


def test_growing_keeps_the_old_logits_by_value() -> None:
    torch.manual_seed(0)
    model = MLP(in_features=30, hidden=(16,), n_classes=3)
    old_weight = model.classifier.weight.detach().clone()
    x = torch.randn(20, 30)
    before = model(x).detach()
    assert n_outputs(model) == 3
    assert grow_classifier(model, 5) and n_outputs(model) == 5
    after = model(x).detach()
    assert torch.equal(model.classifier.weight[:3], old_weight)
    assert after.shape == (20, 5)
    # the same weights; only the matmul's blocking over a wider output may differ in the last bit
    torch.testing.assert_close(after[:, :3], before, rtol=0, atol=1e-6)
    assert not grow_classifier(model, 4) and n_outputs(model) == 5


def test_the_last_linear_is_the_head_without_a_classifier_attribute() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(4, 6)
    before = model(x).detach()
    assert grow_classifier(model, 4)
    assert isinstance(model[2], nn.Linear) and model[2].out_features == 4
    torch.testing.assert_close(model(x).detach()[:, :2], before, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="no nn.Linear"):
        n_outputs(nn.Sequential(nn.ReLU()))


def test_a_bare_linear_model_has_outputs_but_no_head_to_grow() -> None:
    import pytest
    from torch import nn

    from lifelong.errors import ConfigError
    from lifelong.learn.heads import grow_classifier, n_outputs

    assert n_outputs(nn.Linear(8, 4)) == 4
    with pytest.raises(ConfigError, match="single nn.Linear"):
        grow_classifier(nn.Linear(8, 4), 6)
