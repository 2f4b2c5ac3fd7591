"""MultiHead: one head per task id; every sample goes through its own task's head."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import MultiHead


def test_samples_are_routed_to_their_tasks_head() -> None:
    stream = toy_scenario("task")
    learner = Learner(toy_model(), [MultiHead()], lr=0.1, batch_size=8)
    learner.fit(stream)
    model = learner.model
    assert sorted(model.task_heads) == ["0", "1"]
    x = torch.cat([e.test.features()[:5] for e in stream.experiences])
    t = torch.cat([e.test.t[:5] for e in stream.experiences])  # a mixed batch: 5 of task 0, 5 of task 1
    logits = learner.predict_logits(x, t)
    with torch.no_grad():
        for task in (0, 1):
            rows = t == task
            expected = model.task_heads[str(task)](model.features(x[rows]))
            cls = list(learner.task_classes[task])
            assert torch.allclose(logits[rows][:, cls], expected[:, cls])
            others = [c for c in range(4) if c not in cls]
            assert torch.isinf(logits[rows][:, others]).all()
    assert learner.extra_parameters() == 2 * (16 * 4 + 4)
    assert min(learner.evaluate(stream)) > 0.6
