import json
import os
import subprocess
import sys

import pytest

import mll_jax as mll
from mll_jax import cli
from mll_jax.concepts import sdag
from mll_jax.configs.selection import SelectionConfig, SolverConfig


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hub_list_and_info(capsys, hub_path):
    code, out, _ = run(capsys, "--hub", str(hub_path), "hub", "list")
    assert code == 0 and "footwear-cnn" in out and "general" in out
    code, out, _ = run(capsys, "--hub", str(hub_path), "hub", "info", "swapped-cnn")
    assert code == 0 and out.count("MISLABELLED") == 2


def test_label_reports_mislabelled_heads(capsys, hub_copy):
    code, out, _ = run(capsys, "--hub", str(hub_copy.path), "label", "--force", "swapped-cnn")
    assert code == 0 and "labelled 1 model(s): swapped-cnn" in out
    assert "mislabelled: swapped-cnn head 0 declared 'Sneaker'" in out


def test_select_table_and_json(capsys, hub_path):
    code, out, _ = run(capsys, "--hub", str(hub_path), "select", "sandals", "sneakers", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc == mll.select(mll.Hub.open(hub_path), ["sandals", "sneakers"]).to_json()  # the library's answer
    code, out, _ = run(capsys, "--hub", str(hub_path), "select", "sandals", "sneakers")
    assert code == 0 and "models used" in out
    code, out, _ = run(capsys, "--hub", str(hub_path), "select", "sandals", "sneakers", "boots", "--explain")
    assert code == 0 and "candidates)" in out and "log-temperatures" in out
    code, out, _ = run(capsys, "--hub", str(hub_path), "select", "sandals", "sneakers", "boots", "--max-models", "1")
    assert code == 0 and "models used: " in out and "," not in out.split("models used: ")[1].split(";")[0]


def test_hub_option_goes_before_or_after_the_command(capsys, hub_path, tmp_path):
    code, after, _ = run(capsys, "hub", "list", "--hub", str(hub_path))
    assert code == 0 and "footwear-cnn" in after
    code, before, _ = run(capsys, "--hub", str(hub_path), "hub", "list")
    assert before == after
    code, _, err = run(capsys, "--hub", str(hub_path), "hub", "list", "--hub", str(tmp_path / "none"))
    assert code == 2 and "no hub at" in err  # the later one wins


def test_sdag_build_and_show(capsys, tmp_path):
    code, out, _ = run(capsys, "sdag", "build", "--out", str(tmp_path))
    assert code == 0 and "27 nodes" in out
    code, out, _ = run(capsys, "sdag", "show", "shoe.n.01", "--sdag", str(tmp_path))
    assert code == 0 and "gym_shoe.n.01, sandal.n.01" in out


def test_select_pools_from_the_command_line(capsys, hub_path):
    argv = ["--hub", str(hub_path), "select", "sandals", "sneakers", "boots", "--combination", "pool", "--json"]
    code, out, err = run(capsys, *argv, "--pool-general-share", "0.5")
    assert code == 0, err
    for choices in json.loads(out)["choices"]:
        assert [c["weight"] for c in choices if c["model"] == "general"] == [0.5] and len(choices) > 1
    code, out, err = run(capsys, *argv, "--pool-general-share", "measured")
    assert code == 0, err
    shares = {c["weight"] for cs in json.loads(out)["choices"] for c in cs if c["model"] == "general"}
    assert len(shares) == 1 and 0 < shares.pop() < 1  # one share for the task, measured on its node samples


def test_select_follows_the_hubs_own_settings_and_a_flag_replaces_one(capsys, hub_copy):
    hub_copy.set_selection_config(SelectionConfig(solver=SolverConfig(combination="pool")))
    argv = ["--hub", str(hub_copy.path), "select", "sandals", "sneakers", "boots", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    choices = json.loads(out)["choices"]
    assert all(c["weight"] == pytest.approx(1 / len(cs)) for cs in choices for c in cs) and len(choices[0]) > 1
    code, out, err = run(capsys, *argv, "--combination", "fitted")
    assert code == 0, err
    assert any(json.loads(out)["biases"])  # CHCO's fit: calibrated, where a pool fits no bias


def test_hub_settings_shows_and_changes_what_select_uses(capsys, hub_copy):
    argv = ["--hub", str(hub_copy.path), "hub", "settings"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert SelectionConfig.from_json(json.loads(out)) == SelectionConfig()
    code, out, err = run(capsys, *argv, "--combination", "pool", "--pool-general-share", "measured")
    assert code == 0, err
    pooled = SelectionConfig(solver=SolverConfig(combination="pool", pool_general_share="measured"))
    assert SelectionConfig.from_json(json.loads(out)) == pooled == mll.Hub.open(hub_copy.path).selection_config
    code, _, err = run(capsys, *argv, "--max-models", "1")  # refused under a pool: nothing stored changes
    assert code == 2 and "max_models needs" in err
    assert mll.Hub.open(hub_copy.path).selection_config == pooled
    code, out, err = run(capsys, *argv, "--reset", "--samples-per-class", "400")
    assert code == 0, err
    assert mll.Hub.open(hub_copy.path).selection_config == SelectionConfig(samples_per_class=400)


def test_sdag_show_reads_the_hubs_own_sdag(capsys, hub_path):
    code, out, err = run(capsys, "--hub", str(hub_path), "sdag", "show", "shoe.n.01")
    assert code == 0, err
    assert out.strip() == sdag.describe(mll.Hub.open(hub_path).sdag, "shoe.n.01").strip()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["select", "sandal", "!!!"], "no letters or digits"),
        (["select", "sandal"], "at least 2 classes"),
        (["select", "sandal", "sandals"], "both mean sandal.n.01"),
        (["select", "sandal", "Sandal"], "duplicate class name"),
        (["select", "sandal", " "], "empty"),
        (["hub", "info", "no-such-model"], "no model 'no-such-model'"),
        (["select", "sandal", "boot", "--combination", "pool", "--max-models", "1"], "max_models needs"),
        (["select", "sandal", "boot", "--combination", "pool", "--pool-general-share", "2"], "must lie in [0, 1]"),
        (["select", "sandal", "boot", "--pool-general-share", "half"], "or be 'measured'"),
    ],
)
def test_bad_input_exits_nonzero_and_leaves_the_hub_alone(capsys, hub_copy, argv, message):
    hub_path = hub_copy.path  # a copy of its own: other workers reading the session hub touch its SQLite files
    before = {p: p.stat().st_mtime_ns for p in hub_path.rglob("*") if p.is_file()}
    code, _, err = run(capsys, "--hub", str(hub_path), *argv)
    assert code == 2 and message in err
    assert {p: p.stat().st_mtime_ns for p in hub_path.rglob("*") if p.is_file()} == before


def test_missing_hub(capsys, tmp_path):
    code, _, err = run(capsys, "--hub", str(tmp_path / "none"), "select", "sandal", "sneakers")
    assert code == 2 and "mll-jax hub build" in err
    assert not (tmp_path / "none").exists()


def test_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "mll_jax", "--help"], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0 and "mll-jax demo" in result.stdout


def _subcommands(parser, prefix=()):
    """Every leaf command of the CLI, as argv prefixes."""
    import argparse

    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix
        return
    for name, sub in actions[0].choices.items():
        yield from _subcommands(sub, (*prefix, name))


def test_every_command_has_help_with_an_example(capsys):
    commands = list(_subcommands(cli.parser()))
    assert ("experiment", "growth") in commands and ("cache", "clear") in commands and ("report",) in commands
    for argv in commands:
        with pytest.raises(SystemExit) as exit:
            cli.main([*argv, "--help"])
        out = capsys.readouterr().out
        assert exit.value.code == 0 and "example:" in out and f"mll-jax {argv[0]}" in out, argv


def test_json_on_commands_that_report(capsys, hub_path):
    for argv in (["hub", "list"], ["hub", "info", "swapped-cnn"], ["hub", "verify"], ["label"], ["cache", "info"]):
        code, out, _ = run(capsys, "--hub", str(hub_path), *argv, "--json")
        assert code == 0, argv
        json.loads(out)
    code, out, _ = run(capsys, "--hub", str(hub_path), "hub", "info", "swapped-cnn", "--json")
    assert sum(h["mislabelled"] for h in json.loads(out)["heads"]) == 2


def test_select_plot_draws_the_selection(capsys, hub_path, tmp_path):
    png = tmp_path / "selection.png"
    code, out, _ = run(capsys, "--hub", str(hub_path), "select", "purse", "sandals", "ankle boot", "--plot", str(png))
    assert code == 0 and f"wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_cache_info_and_clear(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MLL_JAX_CACHE", str(tmp_path))
    for part, size in (("jax", 3000), ("oracles", 5000)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "blob").write_bytes(b"x" * size)
    code, out, _ = run(capsys, "cache", "info", "--json")
    assert code == 0 and json.loads(out)["bytes"] == {"jax": 3000, "oracles": 5000}
    code, _, err = run(capsys, "cache", "clear")
    assert code == 2 and "--all" in err
    code, _, err = run(capsys, "cache", "clear", "hub")
    assert code == 2 and "no ['hub'] in the cache" in err
    code, out, _ = run(capsys, "cache", "clear", "jax")
    assert code == 0 and not (tmp_path / "jax").exists() and (tmp_path / "oracles" / "blob").is_file()


def test_verbose_logs_and_default_is_quiet(capsys, hub_path):
    code, _, err = run(capsys, "--hub", str(hub_path), "label")
    assert code == 0 and "mll_jax.labeling" not in err
    code, _, err = run(capsys, "-v", "--hub", str(hub_path), "label")
    assert code == 0 and "mll_jax.labeling.labels: 0 of" in err
    assert err.count("mll_jax.labeling.labels: 0 of") == 1  # one handler, however often main runs
