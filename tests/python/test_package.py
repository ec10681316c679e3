"""The package imports with no display and no network, and `cmake --install`
puts a working copy where the interpreter finds it."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def clean_env(**extra):
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
           # Any attempt to reach the network would go to a closed port.
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    # Under scripts/test.sh --sanitize the interpreter needs the sanitizer
    # runtime preloaded, in the child as in this process.
    for name in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


def test_imports_with_no_display_and_no_network():
    code = ("import sys, flows; "
            "assert 'matplotlib' not in sys.modules and 'IPython' not in sys.modules; "
            "print(flows.__version__, len(flows.plugins()) > 10)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean_env(PYTHONPATH=os.environ.get("PYTHONPATH", "")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "True"


def test_cmake_install_puts_a_working_module_in_site_packages(tmp_path):
    build = os.environ.get("FLOWS_BUILD_DIR")
    if not build:
        pytest.skip("FLOWS_BUILD_DIR is not set (ctest sets it)")
    prefix = tmp_path / "prefix"
    done = subprocess.run(["cmake", "--install", build, "--prefix", str(prefix)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    site = os.environ["FLOWS_PYTHON_INSTALL_DIR"]
    site = site if os.path.isabs(site) else str(prefix / site)
    code = ("import flows, numpy as np\n"
            "print(flows.__file__)\n"
            "origins = {p['origin'] for p in flows.plugins() if p['name'] == 'maf'}\n"
            "print(origins.pop())\n"
            "x = np.random.default_rng(0).standard_normal((400, 2))\n"
            "m = flows.fit(x, trainer={'steps': 20}, progress=False)\n"
            "print(m.log_prob(x[:5]).shape)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_env(PYTHONPATH=site))
    assert done.returncode == 0, done.stderr
    module, maf, shape = done.stdout.split("\n")[:3]
    assert module.startswith(str(prefix))
    assert maf.startswith(str(prefix)) and "flows/plugins" in maf
    assert shape == "(5,)"
