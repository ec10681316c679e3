"""Every exception class, raised from Python with its message; the message is
the one the command line prints after "error: "."""
import numpy as np
import pytest

import flows
from conftest import SMALL_TRAINER, moons

TINY = {"bijectors": [{"type": "maf", "layers": 1, "hidden": [8]}]}


def test_every_error_derives_from_flows_error():
    for cls in (flows.ConfigError, flows.DataError, flows.NumericalError, flows.PluginError,
                flows.CheckpointError, flows.IoError):
        assert issubclass(cls, flows.Error) and issubclass(cls, Exception)


def test_an_unknown_key_is_a_config_error_with_its_path_and_a_suggestion():
    with pytest.raises(flows.ConfigError) as e:
        flows.fit(moons(300), model={"bijectors": [{"type": "maf", "hiden": [8]}]},
                  trainer=SMALL_TRAINER, progress=False)
    assert "model.bijectors[0].hiden: unknown key (did you mean 'hidden'?)" in str(e.value)


def test_yaml_text_sections_report_their_own_lines():
    with pytest.raises(flows.ConfigError, match=r"^fit:2:1: trainer.stesp: unknown key "
                                                r"\(did you mean 'steps'\?\)"):
        flows.fit(moons(300), model=TINY, trainer="batch_size: 64\nstesp: 10\n", progress=False)
    with pytest.raises(flows.ConfigError, match=r"bijectors\[0\]: unknown bijector 'mafx'|'mafx'"):
        flows.fit(moons(300), model={"bijectors": [{"type": "mafx"}]}, progress=False)
    with pytest.raises(flows.ConfigError, match="trainer.steps: must be > 0"):
        flows.fit(moons(300), model=TINY, trainer={"steps": 0}, progress=False)
    with pytest.raises(flows.ConfigError, match="malformed YAML"):
        flows.fit(moons(300), model="bijectors: [", progress=False)


def test_bad_data_is_a_data_error_naming_row_and_column():
    x = moons(300)
    x[17, 0] = np.inf
    with pytest.raises(flows.DataError, match=r"^x: row 17, column 0 is inf"):
        flows.fit(x, model=TINY, progress=False)
    with pytest.raises(flows.DataError, match="val: 3 columns, but x has 2 columns"):
        flows.fit(moons(300), val=np.zeros((5, 3)), model=TINY, progress=False)
    with pytest.raises(flows.DataError, match="context: 4 rows for the 300 rows of x"):
        flows.fit(moons(300), context=np.zeros((4, 1)), model=TINY, progress=False)


def test_a_diverging_loss_is_a_numerical_error():
    # Without standardization log N(1e200) overflows: the first loss is not
    # finite (inf, or nan where the float32 network's inputs overflow too),
    # and the message names the step and the layer.
    with pytest.raises(flows.NumericalError,
                       match=r"training stopped at step 1: the training loss is (inf|nan); "
                             r"the first non-finite value appeared in bijectors\[0\] \(maf\)"):
        flows.fit(np.full((100, 2), 1e200) * np.arange(1, 3), progress=False,
                  model=dict(TINY, standardize=False), trainer=SMALL_TRAINER)


def test_plugin_problems_are_plugin_errors(tmp_path):
    with pytest.raises(flows.PluginError, match="does not exist"):
        flows.load_plugins(tmp_path / "missing")
    fake = tmp_path / "flows_plugin_fake.so"
    fake.write_text("not a shared library")
    with pytest.raises(flows.PluginError, match="flows_plugin_fake.so"):
        flows.load_plugins(fake)
    with pytest.raises(flows.PluginError, match="holds no loadable flows plugin"):
        flows.load_plugins(tmp_path)


def test_bad_model_files_are_checkpoint_errors_with_the_cli_text(tmp_path, cli, moons_model):
    bad = tmp_path / "bad.flows"
    bad.write_bytes(b"FLOWSCKP" + b"\0" * 10)
    with pytest.raises(flows.CheckpointError) as e:
        flows.load(bad)
    assert str(bad) in str(e.value)
    done = cli("info", bad, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {e.value}"

    model, _ = moons_model
    good = tmp_path / "good.flows"
    model.save(good)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(flows.CheckpointError, match="(?i)checksum|crc"):
        flows.load(bad)
    with pytest.raises(flows.CheckpointError):
        flows.load(tmp_path / "nothing-here.flows")
    with pytest.raises(flows.CheckpointError, match="no-such-folder"):
        model.save(tmp_path / "no-such-folder" / "m.flows")


def test_run_errors_carry_the_cli_text(tmp_path, cli, source_dir):
    config = f"{source_dir}/configs/quickstart.yaml"
    with pytest.raises(flows.ConfigError) as e:
        flows.run(config, overrides={"trainer.stpes": 10}, output=tmp_path, progress=False)
    done = cli("run", config, "--set", "trainer.stpes=10", "-o", tmp_path, check=False)
    assert done.returncode == 1 and done.stderr.strip() == f"error: {e.value}"
    with pytest.raises(flows.ConfigError, match="cannot open the pipeline file"):
        flows.run(tmp_path / "missing.yaml")


def test_conditional_mistakes_are_data_errors(moons_model):
    model, x = moons_model
    with pytest.raises(flows.DataError, match=r"context: the model 'fit' reads 2 x columns and "
                                              r"no context \(it is unconditional\); leave context"):
        model.log_prob(x[:3], context=np.zeros((3, 1)))
    with pytest.raises(flows.ConfigError, match="n: must be >= 0, got -1"):
        model.sample(-1)
    with pytest.raises(flows.ConfigError, match="seed: must be >= 0"):
        model.sample(3, seed=-2)


def test_mle_refuses_a_bijector_without_a_likelihood_gradient():
    with pytest.raises(flows.ConfigError, match=r"trainer.type: trainer 'mle' .* cannot fit "
                                                r"model.bijectors\[0\] 'flow_matching'.*cfm"):
        flows.fit(moons(200), model={"bijectors": [{"type": "flow_matching"}]}, progress=False)
