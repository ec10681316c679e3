"""Ctrl-C and step callbacks stop training between steps and keep a usable
model with the best parameters so far; the GIL is released meanwhile."""
import os
import signal
import threading

import numpy as np
import pytest

import flows
from conftest import moons

MODEL = {"bijectors": [{"type": "maf", "layers": 2, "hidden": [16, 16]}]}


def test_sigint_from_a_thread_stops_a_long_fit_and_keeps_a_usable_model():
    x, val = moons(2000), moons(300, seed=1)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        model = flows.fit(x, val=val, model=MODEL, progress=False,
                          trainer={"steps": 10_000_000, "eval_every": 20, "batch_size": 64})
    finally:
        timer.cancel()
    training = model.training
    assert training["interrupted"]
    assert 0 < training["steps"] < 10_000_000
    assert np.isfinite(model.log_prob(val)).all()
    assert model.info()["trained_steps"] == training["steps"]


def test_a_callback_raising_keyboard_interrupt_keeps_the_best_validated_parameters():
    x, val = moons(2000), moons(300, seed=1)
    seen = []

    def callback(progress):
        seen.append(progress["step"])
        if progress["step"] == 35:
            raise KeyboardInterrupt

    model = flows.fit(x, val=val, model=MODEL, progress=False, callback=callback,
                      trainer={"steps": 1000, "eval_every": 10})
    training = model.training
    assert seen == list(range(1, 36))
    assert training["interrupted"] and training["steps"] == 35
    assert training["best_step"] in (10, 20, 30)
    # The parameters are those of the best validated step: their validation NLL.
    assert -model.log_prob(val).mean() == pytest.approx(training["best_val_loss"], abs=1e-9)


def test_a_callback_returning_false_stops_and_other_exceptions_propagate(tmp_path):
    x = moons(500)
    model = flows.fit(x, model=MODEL, progress=False, trainer={"steps": 500},
                      callback=lambda p: p["step"] < 25)
    assert model.training["steps"] == 25 and model.training["interrupted"]
    model.save(tmp_path / "m.flows")  # an interrupted model saves and loads
    np.testing.assert_array_equal(flows.load(tmp_path / "m.flows").log_prob(x[:9]),
                                  model.log_prob(x[:9]))

    def broken(progress):
        if progress["step"] == 3:
            raise ValueError("a bug in the callback")

    with pytest.raises(ValueError, match="a bug in the callback"):
        flows.fit(x, model=MODEL, progress=False, trainer={"steps": 500}, callback=broken)


def test_scoring_releases_the_gil(moons_model):
    model, _ = moons_model
    big = np.tile(moons(1000), (2000, 1))  # 2e6 rows: a long call
    started = threading.Event()
    result = {}

    def score():
        started.set()
        result["log_p"] = model.log_prob(big)

    worker = threading.Thread(target=score)
    worker.start()
    started.wait()
    spins = 0
    while worker.is_alive():
        spins += 1
    worker.join()
    assert result["log_p"].shape == (2_000_000,)
    # With the GIL held by the call this loop could not run while it lasts.
    assert spins > 1000


def test_progress_lines_go_to_stderr(capsys):
    flows.fit(moons(300), model=MODEL, trainer={"steps": 20, "eval_every": 10})
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("step")]
    assert len(lines) == 10  # a line every tenth of the run when not on a terminal
    assert lines[-1].startswith("step 20/20  loss ")


def test_sigint_stops_the_training_of_flows_run_and_the_later_stages_run(tmp_path):
    pipeline = """
name: interrupted
data: {type: moons, n_train: 2000, n_val: 300, n_test: 300}
model:
  bijectors: [{type: maf, layers: 2, hidden: [16, 16]}]
trainer: {steps: 10000000, batch_size: 64, eval_every: 20}
stages: [train, evaluate, save]
"""
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.warns(RuntimeWarning, match="interrupted"):
            metrics = flows.run(pipeline, output=tmp_path / "run", progress=False)
    finally:
        timer.cancel()
    assert metrics["interrupted"]
    assert 0 < metrics["steps"] < 10_000_000
    assert np.isfinite(metrics["nll"]["test"])
    model = flows.load(tmp_path / "run" / "model.flows")  # saved on the best parameters
    assert model.info()["trained_steps"] == metrics["steps"]
