"""What CHCO charges a model for (`SelectionConfig.cost`): its parameters relative to the hub's largest, or its
measured GFLOP per image (`nets.forward_flops`), a head over a shared backbone paying for the backbone too."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mll_jax as mll
from mll_jax import nets
from mll_jax.concepts import task as task_lib
from mll_jax.configs.selection import SelectionConfig
from mll_jax.selection import problems
from mll_jax.selection.candidates import candidates


def test_a_model_costs_its_parameters_or_its_measured_flops(hub):
    standalone = next(i for i in hub.ids("expert") if hub.entry(i).backbone is None)
    head = next(i for i in hub.ids("expert") if hub.entry(i).backbone is not None)
    e = hub.entry(standalone)
    assert problems.model_cost(hub, standalone) == e.params / hub.largest_params()
    flops = nets.forward_flops(e.arch, e.config, len(e.heads), e.input_spec["shape"])
    assert problems.model_cost(hub, standalone, "flops") == flops / 1e9 > 0
    h, b = hub.entry(head), hub.backbones[hub.entry(head).backbone]
    backbone = nets.forward_flops(b.arch, b.config, b.num_heads, b.input_spec["shape"], features=True)
    assert problems.model_cost(hub, head, "flops") == pytest.approx(
        (backbone + nets.forward_flops(h.arch, h.config, len(h.heads), (b.features,))) / 1e9
    )
    assert problems.model_cost(hub, head, "flops") > backbone / 1e9  # a head run alone pays for its backbone


def test_a_task_charges_each_of_its_models_what_the_config_says(hub):
    classes = task_lib.resolve(hub.sdag, ["sandal", "sneaker", "ankle boot"])
    cands = candidates(hub, classes, SelectionConfig())
    models = problems.task_models(cands)
    for cost in ("params", "flops"):
        task = problems.build_problem(hub, classes, cands, cost=cost)
        expected = [problems.model_cost(hub, m, cost) for m in models]
        np.testing.assert_allclose(task.cost[: len(models)], expected, rtol=1e-6)
        assert not task.cost[len(models) :].any()  # padding costs nothing
    assert mll.select(hub, ["sandal", "sneaker"], SelectionConfig(cost="flops")).models


def test_an_unknown_cost_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"cost must be one of \('params', 'flops'\), got 'watts'"):
        SelectionConfig(cost="watts")


def test_select_takes_the_cost_and_its_weight_on_the_command_line(hub_path):
    cmd = [sys.executable, "-m", "mll_jax", "--hub", str(hub_path), "select", "sandal", "sneaker", "--json"]
    done = subprocess.run([*cmd, "--cost", "flops", "--cost-weight", "0.5"], capture_output=True, text=True,
                          env=os.environ)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    refused = subprocess.run([*cmd, "--cost", "watts"], capture_output=True, text=True, env=os.environ)
    assert refused.returncode != 0 and "invalid choice: 'watts'" in refused.stderr
