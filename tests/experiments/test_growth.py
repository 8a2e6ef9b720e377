"""The growth experiment, small (24 generated experts grown 1, 4, 24; 8 tasks, 2 orders): what the full run
reports, and the orderings its bars are about, in the paper regime. The in-domain regime runs the same loop with
another general model; training that one costs CI 2.5 minutes, so its path is tested with one epoch in
`tests/zoo/test_captions.py`.
"""

import numpy as np
import pytest

from mll_jax.configs import scale_hub, suite
from mll_jax.configs.evaluation import NOISE
from mll_jax.experiments import baselines, evaluation, growth, report
from mll_jax.zoo import generate

EXPERTS = 24
SIZES = [1, 4, EXPERTS]  # three steps keep CI short; the full run grows 1, 2, 4, ... every expert
ORDERS = 2  # the full run draws 3


@pytest.fixture(scope="module")
def result(hub, tmp_path_factory):
    work = tmp_path_factory.mktemp("growth")
    full = generate.build(work / "hub", scale_hub.growth_config(EXPERTS), progress=False, backbones_from=hub)
    tasks = suite.spread(suite.DEMO_TASKS, 8)  # the demo test's tasks: their oracles are trained once
    return growth.run(full, work, sizes=SIZES, orders=ORDERS, tasks=tasks, regimes=("paper",))


@pytest.mark.slow
def test_growth_labels_only_new_models_and_covers_more(result):
    assert result["sizes"] == SIZES and result["regimes"] == ["paper"]
    for regime in result["regimes"]:
        for order in range(ORDERS):
            rows = [r for r in result["rows"] if (r["regime"], r["order"]) == (regime, order)]
            assert set(rows[0]["labelled_now"]) == {"general", *rows[0]["experts"]}
            for before, after in zip(rows, rows[1:]):
                assert set(after["labelled_now"]) == set(after["experts"]) - set(before["experts"])
        summary = result["summary"][regime]
        assert summary[-1]["coverage"]["mean"] > summary[0]["coverage"]["mean"]
    assert result["general"]["paper"]["data"] == "captions"
    assert result["general_zero_shot"]["paper"] > 0.3  # 10-way: chance is 0.1


@pytest.mark.slow
def test_in_the_paper_regime_the_hub_adds_what_the_general_model_lacks(result):
    full, one = result["summary"]["paper"][-1], result["summary"]["paper"][0]
    mean = {m: full[m]["mean"] for m in growth.METHODS}
    assert mean["mll"] > mean["patch_only"], mean
    assert all(mean["mll"] >= mean[m] for m in ("f1_top1", "f1_top3", "declared", "random")), mean
    assert mean["mll"] > one["mll"]["mean"], (mean["mll"], one["mll"]["mean"])
    assert mean["mll"] > 0.9 * result["oracle"]


@pytest.mark.slow
def test_growth_reports_the_oracle_mislabels_a_table_and_a_plot(result, hub, tmp_path):
    test = evaluation.evaluation_data(hub, "test")
    assert len(result["oracle_by_task"]) == len(result["tasks"])
    for names, accuracy in zip(result["tasks"], result["oracle_by_task"]):
        classes, keep, y = evaluation.task_items(hub, names, test)
        assert accuracy == evaluation.accuracy(baselines.oracle_logits(hub, classes, test.images[keep]), y)
    mislabels = result["mislabels"]
    assert mislabels["swapped_heads"] == 2  # expert 19 of 24 (5 %) has its first two names exchanged
    assert 0 <= mislabels["precision"] <= 1 and 0 <= mislabels["recall"] <= 1
    text = growth.table(result)
    assert "paper regime" in text and "recall" in text
    png = tmp_path / "growth.png"
    growth.plot(result, png)
    assert png.stat().st_size > 20_000
    section = "\n".join(report.growth_section(result, "growth.png"))
    assert "MLL − patch only" in section and np.isfinite(result["oracle"])
    assert "MLL minus each baseline, paper regime" in section and "standard error over the 8" in section


@pytest.mark.slow
def test_growth_differences_are_paired_by_task_and_agree_with_the_means(result):
    for summary, differences in zip(result["summary"]["paper"], result["differences"]["paper"]):
        assert summary["size"] == differences["size"]
        for baseline in growth.METHODS[1:]:
            d = differences[baseline]
            assert d["wins"] + d["losses"] + d["ties"] == len(result["tasks"])
            assert d["mean"] == pytest.approx(summary["mll"]["mean"] - summary[baseline]["mean"], abs=1e-9)
            noise = NOISE * max(d["stderr"], d["stderr_tasks"])
            assert d["stderr_tasks"] >= 0 and d["beyond_noise"] == (abs(d["mean"]) > noise)


def test_growth_rejects_bad_sizes_orders_and_regimes(hub, tmp_path):
    with pytest.raises(ValueError, match=f"hub sizes must lie in 1..{len(hub.ids('expert'))}"):
        growth.run(hub, tmp_path, sizes=[0, 99], orders=1)
    with pytest.raises(ValueError, match="orders must be at least 1"):
        growth.run(hub, tmp_path, sizes=[1], orders=0)
    with pytest.raises(ValueError, match="unknown general-model regime 'web'"):
        growth.run(hub, tmp_path, sizes=[1], orders=1, regimes=("web",))
    assert not any(tmp_path.iterdir())  # nothing was written
