"""flows.fit -> save -> `flows log-prob`, and `flows run` -> flows.load, agree to 1e-12."""
import json

import numpy as np
import pytest

import flows
from conftest import SMALL_MODEL, SMALL_TRAINER, moons


def test_fit_save_then_cli_log_prob_matches(moons_model, tmp_path, cli):
    model, x = moons_model
    path = tmp_path / "model.flows"
    model.save(path)
    rows = moons(300, seed=9)
    np.save(tmp_path / "rows.npy", rows)
    cli("log-prob", path, tmp_path / "rows.npy", "-o", tmp_path / "out.npy")
    from_cli = np.load(tmp_path / "out.npy").ravel()
    np.testing.assert_allclose(model.log_prob(rows), from_cli, rtol=0, atol=1e-12)
    # And the model loaded back in Python gives the same values.
    np.testing.assert_allclose(flows.load(path).log_prob(rows), from_cli, rtol=0, atol=1e-12)


def test_sample_with_a_seed_matches_cli_sample(moons_model, tmp_path, cli):
    model, _ = moons_model
    path = tmp_path / "model.flows"
    model.save(str(path))
    cli("sample", path, "-n", 500, "--seed", 11, "-o", tmp_path / "s.npy")
    np.testing.assert_allclose(model.sample(500, seed=11), np.load(tmp_path / "s.npy"),
                               rtol=0, atol=1e-12)


def test_cli_evaluate_bits_per_dim_matches(moons_model, tmp_path, cli):
    model, _ = moons_model
    model.save(tmp_path / "model.flows")
    rows = moons(400, seed=4)
    np.save(tmp_path / "rows.npy", rows)
    out = cli("evaluate", tmp_path / "model.flows", tmp_path / "rows.npy", "--bits-per-dim",
              "--json").stdout
    report = json.loads(out)
    assert model.bits_per_dim(rows) == pytest.approx(report["bits_per_dim"], abs=1e-9)
    assert -model.log_prob(rows).mean() == pytest.approx(report["nll"], abs=1e-9)


def test_run_then_load_in_python_matches_cli(tmp_path, cli, source_dir):
    metrics = flows.run(f"{source_dir}/configs/quickstart.yaml",
                        overrides={"trainer.steps": 100, "data.n_train": 2000,
                                   "data.n_test": 500, "stages": ["train", "evaluate", "save"]},
                        output=tmp_path / "run", progress=False)
    assert metrics["name"] == "quickstart"
    assert metrics["steps"] == 100
    assert metrics["output"] == str(tmp_path / "run")
    model = flows.load(tmp_path / "run" / "model.flows")
    assert model.dim == 2 and model.context_columns == []
    rows = moons(200, seed=5)
    np.save(tmp_path / "rows.npy", rows)
    cli("log-prob", tmp_path / "run" / "model.flows", tmp_path / "rows.npy", "-o",
        tmp_path / "lp.npy")
    np.testing.assert_allclose(model.log_prob(rows), np.load(tmp_path / "lp.npy").ravel(),
                               rtol=0, atol=1e-12)


def test_run_takes_yaml_text_and_a_list_of_overrides(tmp_path):
    text = """
name: from-text
seed: 1
data: {type: moons, n_train: 1000, n_val: 200, n_test: 200}
model: {bijectors: [{type: maf, layers: 1, hidden: [8]}]}
trainer: {steps: 20, eval_every: 10}
stages: [train, evaluate]
"""
    metrics = flows.run(text, overrides=["trainer.steps=30"], output=tmp_path / "t",
                        progress=False)
    assert metrics["steps"] == 30 and "test" in metrics["nll"]


def test_info_describes_the_model_as_flows_info(moons_model, tmp_path, cli):
    model, _ = moons_model
    info = model.info()
    assert info["dim"] == 2 and info["name"] == "fit" and info["seed"] == 3
    assert info["trained_steps"] == SMALL_TRAINER["steps"]
    assert {"standard_normal", "maf"} <= {c["name"] for c in info["components"]}
    assert info["training"]["steps"] == SMALL_TRAINER["steps"]
    model.save(tmp_path / "m.flows")
    text = cli("info", tmp_path / "m.flows").stdout
    assert f"parameters:     {info['parameters']} trainable values" in text
    assert "maf" in text and "name:           fit" in text
    assert repr(model).startswith("<flows.Model 'fit': 2 x columns")


def test_plugins_lists_what_flows_plugins_lists(cli):
    listed = {(p["kind"], p["name"], p["origin"]) for p in flows.plugins()}
    lines = cli("plugins").stdout.splitlines()[1:]
    from_cli = {tuple(line.split(None, 2)) for line in lines if line.strip()}
    assert listed == from_cli
    assert ("bijector", "maf") in {(k, n) for k, n, _ in listed}


def test_load_plugins_adds_a_folder_for_later_calls(tmp_path, monkeypatch):
    maf = [p for p in flows.plugins() if p["name"] == "maf"][0]["origin"]
    monkeypatch.delenv("FLOWS_PLUGIN_PATH", raising=False)
    provided = flows.load_plugins(maf)
    assert "maf" in {p["name"] for p in provided}
    import os
    assert os.path.abspath(maf) in os.environ["FLOWS_PLUGIN_PATH"].split(":")


def test_flow_matching_fits_through_the_cfm_trainer_and_matches_cli(tmp_path, cli):
    x = moons(1000)
    model = flows.fit(x, progress=False, seed=2,
                      model="bijectors:\n  - type: flow_matching\n    hidden: [16, 16]\n",
                      trainer={"type": "cfm", "steps": 50, "batch_size": 128})
    assert model.training["loss_name"] != "nll"
    rows = moons(50, seed=3)
    model.save(tmp_path / "fm.flows")
    np.save(tmp_path / "rows.npy", rows)
    cli("log-prob", tmp_path / "fm.flows", tmp_path / "rows.npy", "-o", tmp_path / "lp.npy")
    np.testing.assert_allclose(model.log_prob(rows), np.load(tmp_path / "lp.npy").ravel(),
                               rtol=0, atol=1e-12)


def test_dequantized_integer_data_reports_bits_per_dim_as_the_cli(tmp_path, cli):
    rng = np.random.default_rng(0)
    x = np.clip(np.round(rng.normal(8, 2, (1500, 2))), 0, 15)
    model = flows.fit(x, data={"dequantize": "uniform", "dequantize_samples": 2},
                      model={"bijectors": [{"type": "maf", "layers": 1, "hidden": [8]}]},
                      trainer={"steps": 60}, progress=False)
    assert model.info()["dequantized"] == [0, 1] and model.info()["dequantize_samples"] == 2
    model.save(tmp_path / "q.flows")
    np.save(tmp_path / "rows.npy", x[:200])
    report = json.loads(cli("evaluate", tmp_path / "q.flows", tmp_path / "rows.npy",
                            "--bits-per-dim", "--json").stdout)
    assert report["nll_kind"] == "dequantized bound"
    assert model.bits_per_dim(x[:200]) == pytest.approx(report["bits_per_dim"], abs=1e-12)
    with pytest.raises(flows.DataError, match="integer"):
        model.bits_per_dim(x[:5] + 0.5)
    with pytest.raises(flows.ConfigError, match=r"data.type: unknown key"):
        flows.fit(x, data={"type": "moons"}, progress=False)
