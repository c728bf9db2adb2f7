"""The paper-reproduction driver: run definitions, shared runs, summaries, README claims."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest

from bench import report, reproduce
from poshw import zoo


def _args(**kw):
    return argparse.Namespace(trials=kw.get("trials", 2), epochs_scale=kw.get("epochs_scale", 1.0))


@pytest.mark.parametrize("name", sorted(reproduce.EXPERIMENTS))
def test_every_run_names_a_zoo_model(name):
    runs = reproduce.EXPERIMENTS[name].runs(_args())
    assert len({(r.home, r.key) for r in runs}) == len(runs)  # no two runs share a directory
    for r in runs:
        zoo.get(r.model)  # raises on an unknown name or parameter


def test_fig2a_shares_fig1a_runs_with_identical_settings():
    """A shared run must be the very run Fig 1a trains, whatever scale Fig 2a is run at."""
    fig1a = {r.key: r for r in reproduce.EXPERIMENTS["fig1a"].runs(_args())}
    shared = [r for r in reproduce.EXPERIMENTS["fig2a"].runs(_args(epochs_scale=0.5)) if r.home]
    assert shared and all(r.home == "fig1a" for r in shared)
    for r in shared:
        assert replace(r, home=None) == fig1a[r.key]
        assert r.directory("fig2a") == reproduce.RUNS / "fig1a" / r.key


def test_epochs_scale_and_trials():
    full = reproduce.EXPERIMENTS["fig3a"].runs(_args())
    half = reproduce.EXPERIMENTS["fig3a"].runs(_args(epochs_scale=0.5))
    assert [r.epochs for r in half] == [max(1, round(r.epochs / 2)) for r in full]
    assert len(reproduce.EXPERIMENTS["fig1a"].runs(_args(trials=3))) == 3 * 19


def test_summarise_mean_min_max_per_group_and_size():
    rows = [{"group": "g", "trainable_params": 10, "test_accuracy": a, "model": "m"} for a in (0.5, 0.7)]
    rows.append({"group": "h", "trainable_params": 10, "test_accuracy": 0.9, "model": "n"})
    s = {x["group"]: x for x in reproduce.summarise(rows)}
    assert s["g"]["trials"] == 2 and s["g"]["accuracy_mean"] == pytest.approx(0.6)
    assert (s["g"]["accuracy_min"], s["g"]["accuracy_max"]) == (0.5, 0.7)
    assert s["h"]["error_mean"] == pytest.approx(0.1)


def test_headline_claims_judge_against_the_targets(monkeypatch):
    def point(acc, params, trials=1):
        return {"accuracy_mean": acc, "trainable_params": params, "trials": trials}

    fake = {
        "fig3a": {"summary": [dict(point(0.9843, 3554), group="ProdSumNet", models=["prodsumnet"])]},
        "fig3b": {"summary": [dict(point(0.93, 3274634), group="reference LeNet", models=["lenet"]),
                              dict(point(0.885, 12174), group="ProdSumNet", models=["prodsumnet"]),
                              dict(point(0.95, 40000), group="ProdSumNet", models=["prodsumnet"])]},
        "fig4b": {"summary": [dict(point(0.9821, 3234118), group="conv-free", models=["convfree"])]},
    }
    monkeypatch.setattr(report, "_load", lambda name: fake.get(name))
    rows = "\n".join(report.headline_rows())
    assert "98.43% | BELOW 98.44%" in rows  # just under the paper's figure is a miss
    assert "at 12,174 params" in rows and "4.50 points (NOT within 4)" in rows  # the 40k model is too big
    assert "98.21% | meets 98.2%" in rows


def test_list_prints_every_experiment(capsys):
    assert reproduce.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in reproduce.EXPERIMENTS)


def test_reproduce_commands_name_the_scale_each_run_was_trained_at():
    exp = reproduce.EXPERIMENTS["fig3a"]
    runs = exp.runs(_args())

    def row(key, epochs):
        return {"key": key, "epochs": epochs, "seed": 0}

    assert reproduce.reproduce_commands(exp, runs, [row("psn-1", 20), row("lenet", 12)]) == \
        ["python -m bench.reproduce fig3a"]
    assert reproduce.reproduce_commands(exp, runs, [row("psn-1", 20), row("psn-0.5", 10), row("psn-0.25", 10)]) == \
        ["python -m bench.reproduce fig3a --only psn-1",
         "python -m bench.reproduce fig3a --epochs-scale 0.5 --only psn-0.5 psn-0.25"]
    # Fig 2a: the shared Fig 1a runs are Fig 1a's business; one trial is said
    fig2a = reproduce.EXPERIMENTS["fig2a"]
    rows = [row("dct-m16-t0", 15), row("prodsum-k2-t0", 5)]
    assert reproduce.reproduce_commands(fig2a, fig2a.runs(_args(trials=1)), rows) == \
        ["python -m bench.reproduce fig2a --trials 1 --epochs-scale 0.5"]
