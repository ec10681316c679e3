"""Conditional models p(x | c): log_prob(x, context) and sample(n, context) match the CLI."""
import numpy as np
import pytest

import flows
from conftest import SMALL_TRAINER, conditional_gaussian


@pytest.fixture(scope="module")
def conditional():
    x, c = conditional_gaussian(2000)
    vx, vc = conditional_gaussian(300, seed=1)
    model = flows.fit(x, context=c, val=vx, val_context=vc, progress=False, seed=1,
                      model={"bijectors": [{"type": "maf", "layers": 2, "hidden": [16, 16]}]},
                      trainer=SMALL_TRAINER, context_columns=["strength"])
    return model


def test_a_conditional_model_names_its_context(conditional):
    assert conditional.dim == 2
    assert conditional.context_columns == ["strength"]
    assert conditional.columns == []
    assert conditional.info()["context_columns"] == ["strength"]


def test_log_prob_with_context_matches_cli(conditional, tmp_path, cli):
    x, c = conditional_gaussian(250, seed=7)
    conditional.save(tmp_path / "m.flows")
    np.save(tmp_path / "rows.npy", np.concatenate([x, c], axis=1))  # x columns, then context
    cli("log-prob", tmp_path / "m.flows", tmp_path / "rows.npy", "-o", tmp_path / "lp.npy")
    np.testing.assert_allclose(conditional.log_prob(x, c), np.load(tmp_path / "lp.npy").ravel(),
                               rtol=0, atol=1e-12)
    # The context moves the density.
    assert not np.allclose(conditional.log_prob(x, c), conditional.log_prob(x, c + 1))


def test_sample_at_one_context_matches_cli(conditional, tmp_path, cli):
    conditional.save(tmp_path / "m.flows")
    cli("sample", tmp_path / "m.flows", "-n", 400, "--seed", 5, "--context", "strength=1.5",
        "-o", tmp_path / "s.npy")
    from_cli = np.load(tmp_path / "s.npy")
    assert (from_cli[:, 0] == 0).all()  # the context_row column
    samples = conditional.sample(400, context=[[1.5]], seed=5)
    np.testing.assert_allclose(samples, from_cli[:, 1:], rtol=0, atol=1e-12)
    # A 1-D context of the context columns is that one row, shared by every sample.
    np.testing.assert_array_equal(conditional.sample(400, context=np.array([1.5]), seed=5),
                                  samples)


def test_sample_with_one_context_row_per_sample(conditional):
    c = np.linspace(-2, 2, 50)[:, None]
    s, log_p = conditional.sample_and_log_prob(50, context=c, seed=2)
    assert s.shape == (50, 2)
    np.testing.assert_allclose(conditional.log_prob(s, c), log_p, rtol=0, atol=1e-8)


def test_a_conditional_model_needs_its_context(conditional):
    x, c = conditional_gaussian(5)
    with pytest.raises(flows.DataError, match="conditional"):
        conditional.log_prob(x)
    with pytest.raises(flows.DataError, match="conditional"):
        conditional.sample(5)
    with pytest.raises(flows.DataError, match="context: 2 columns, but the model 'fit' reads "
                                              r"2 x columns and 1 context column \(strength\)"):
        conditional.log_prob(x, np.zeros((5, 2)))
    with pytest.raises(flows.DataError, match="val_context"):
        flows.fit(x, context=c, val=x, progress=False)
