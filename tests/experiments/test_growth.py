import pytest

from mll_jax.configs import suite
from mll_jax.experiments import baselines, demo, growth


@pytest.mark.slow
def test_growth_covers_more_labels_only_new_models_and_reports_its_noise(hub, tmp_path):
    experts = hub.ids("expert")
    tasks = suite.spread(suite.DEMO_TASKS, 8)  # the demo test's tasks: their oracles are trained once
    result = growth.run(hub, tmp_path / "growth", sizes=[2, len(experts)], orders=1, tasks=tasks)
    small, full = result["rows"]
    assert set(small["labelled_now"]) == {hub.general_id, *small["experts"]}
    assert set(full["labelled_now"]) == set(experts) - set(small["experts"])  # only the new models
    assert full["coverage"] > small["coverage"]
    # No claim on accuracy against hub size here: one order has no noise to set a margin by, and with the
    # in-domain general model patching, the full hub's MLL is not above a two-expert hub's on these tasks.
    assert all(set(s[m]) == {"mean", "stderr", "min", "max"} for s in result["summary"] for m in growth.METHODS)
    # the oracle line is each task's oracle on the test split (read from the oracle cache, not retrained)
    test = demo.evaluation_data(hub, "test")
    assert len(result["oracle_by_task"]) == len(result["tasks"]) == len(tasks) - len(result["unanswered"])
    for names, accuracy in zip(result["tasks"], result["oracle_by_task"]):
        classes, keep, y = demo.task_items(hub, names, test)
        assert accuracy == demo.accuracy(baselines.oracle_logits(hub, classes, test.images[keep]), y)
    assert "oracle" in growth.table(result)
    png = tmp_path / "growth.png"
    growth.plot(result, png)
    assert png.stat().st_size > 20_000


def test_growth_rejects_bad_sizes(hub, tmp_path):
    with pytest.raises(ValueError, match=f"hub sizes must lie in 1..{len(hub.ids('expert'))}"):
        growth.run(hub, tmp_path, sizes=[0, 99], orders=1)
    with pytest.raises(ValueError, match="orders must be at least 1"):
        growth.run(hub, tmp_path, sizes=[1], orders=0)
    assert not any(tmp_path.iterdir())  # nothing was written
