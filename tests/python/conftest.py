"""Shared fixtures: the runner built beside the module (FLOWS_RUNNER, set by
ctest from CMake), small data sets drawn with NumPy, and a helper that runs
the `flows` command line."""
import os
import subprocess

import numpy as np
import pytest

import flows

# A model and a trainer small enough that a fit takes a fraction of a second.
SMALL_MODEL = {"bijectors": [{"type": "maf", "layers": 2, "hidden": [16, 16]}]}
SMALL_TRAINER = {"steps": 150, "batch_size": 128, "eval_every": 50,
                 "optimizer": {"type": "adam", "lr": 5e-3}}


def moons(n, seed=0):
    """Two interleaving half circles with noise (the moons toy, drawn with NumPy)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], axis=1) + 0.05 * rng.standard_normal((n, 2))


def conditional_gaussian(n, seed=0):
    """x | c ~ N((c, -c), diag(1 + c^2/4)), c ~ N(0, 1): a conditional toy."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n, 1))
    scale = np.sqrt(1 + c ** 2 / 4)
    x = np.concatenate([c, -c], axis=1) + scale * rng.standard_normal((n, 2))
    return x, c


@pytest.fixture(scope="session")
def runner():
    path = os.environ.get("FLOWS_RUNNER")
    if not path or not os.path.isfile(path):
        pytest.skip("FLOWS_RUNNER is not set to the flows runner (ctest sets it)")
    return path


@pytest.fixture(scope="session")
def source_dir():
    return os.environ.get("FLOWS_SOURCE_DIR",
                          os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


@pytest.fixture
def cli(runner):
    """cli(args...) runs `flows args...` and returns the completed process."""
    def run(*args, check=True):
        done = subprocess.run([runner, *map(str, args)], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"flows {' '.join(map(str, args))} failed:\n{done.stderr}")
        return done
    return run


@pytest.fixture(scope="module")
def moons_model():
    x = moons(2000)
    val = moons(500, seed=1)
    model = flows.fit(x, val=val, model=SMALL_MODEL, trainer=SMALL_TRAINER, seed=3,
                      progress=False)
    return model, x
