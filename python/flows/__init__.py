"""flows: normalizing flows and flow matching, fitted by a C++ library.

    import numpy as np, flows
    model = flows.fit(x)                  # x: (rows, columns) array
    log_p = model.log_prob(x[:5])         # float64 array, one value per row
    samples = model.sample(1000, seed=0)  # (1000, columns)
    model.save("model.flows")             # `flows log-prob model.flows ...` reads it

The model and trainer sections are the YAML sections of a pipeline
(docs/yaml_reference.md), given as dicts or YAML text and checked key by key
with the messages `flows run` prints. Errors are subclasses of flows.Error.
See docs/python.md.
"""
import json as _json
import warnings as _warnings
import os as _os
import tempfile as _tempfile
from collections.abc import Mapping as _Mapping

from ._flows import (  # noqa: F401
    CheckpointError,
    ConfigError,
    DataError,
    Error,
    IoError,
    Model,
    NumericalError,
    PluginError,
    _sdk_version,
)
from . import _flows

__all__ = [
    "fit", "load", "run", "plugins", "load_plugins", "Model",
    "Error", "ConfigError", "DataError", "NumericalError", "PluginError", "CheckpointError",
    "IoError", "__version__",
]
__version__ = _sdk_version()

#: The model fit() builds when none is given: the quickstart's masked
#: autoregressive flow (4 MADE layers of 32, 32 hidden units).
DEFAULT_MODEL = {"bijectors": [{"type": "maf", "layers": 4, "hidden": [32, 32]}]}


def _plain(value):
    # NumPy scalars and arrays in a section become Python numbers and lists.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be written in a YAML section")


def _section_text(value, name):
    """A section given as a dict (or None) or as YAML text, as YAML text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, _Mapping):
        # JSON is YAML: every key and value reaches the SDK's checks as given.
        return _json.dumps(value, indent=2, default=_plain)
    raise ConfigError(f"fit: {name}: expected a dict or YAML text, got {type(value).__name__}")


def _column_names(obj):
    # pandas-like objects name their columns.
    columns = getattr(obj, "columns", None)
    if columns is None:
        return None
    return [str(c) for c in columns]


def fit(x, *, context=None, val=None, val_context=None, model=None, trainer=None, data=None,
        seed=0, progress=True, callback=None, columns=None, context_columns=None, name="fit"):
    """Trains a flow on the rows of `x` and returns the Model.

    x: (rows, columns) array-like (float64 or float32, any order or strides,
      pandas frames); a 1-D array is one column. Non-finite values are a
      DataError naming row and column.
    context: (rows, k) context for a conditional model p(x | c), one row per
      row of x. val, val_context: validation rows; with them training keeps
      the parameters with the best validation loss (and trainer.patience can
      stop it early); without them the last step's parameters.
    model, trainer: the pipeline's `model:` and `trainer:` sections, as dicts
      or YAML text (default model: DEFAULT_MODEL; default trainer: mle with
      its defaults). Checked key by key: a wrong key is a ConfigError.
    data: the data section's keys for integer data, {"dequantize": "uniform"
      or [columns], "dequantize_samples": k} (docs/yaml_reference.md): the
      model is then trained on x + U(0, 1) noise and bits_per_dim() is the
      dequantized bound, as for a pipeline.
    seed: every random draw (initialisation, batches) derives from it.
    progress: show a progress line on sys.stderr (live on a terminal and in
      Jupyter; otherwise a line every tenth of the run).
    callback: called after every step with a dict (step, total_steps, loss,
      val_loss, lr, seconds); returning False stops training there.
    columns, context_columns: names saved with the model (default: a
      DataFrame's column names; context columns c0, c1, ...).

    Ctrl-C (KeyboardInterrupt, from the terminal, a signal, or the callback)
    stops training between two steps; fit() then returns the model with the
    best parameters so far and model.training["interrupted"] is True. Any
    other exception from the callback stops training and is raised.
    The GIL is released while training.
    """
    # Plugin folders from load_plugins() reach the SDK through
    # FLOWS_PLUGIN_PATH, which its default search path reads on every call.
    if model is None:
        model = DEFAULT_MODEL
    if columns is None:
        columns = _column_names(x)
    if context_columns is None and context is not None:
        context_columns = _column_names(context)
    return _flows._fit(x, context, val, val_context, _section_text(model, "model"),
                       _section_text(trainer, "trainer"), _section_text(data, "data"),
                       seed, progress, callback,
                       None if columns is None else list(columns),
                       None if context_columns is None else list(context_columns),
                       str(name), [])


def load(path):
    """Loads a saved model (model.flows, from `flows run` or Model.save).

    The plugins it needs are found on the default search path,
    FLOWS_PLUGIN_PATH, the folders given to load_plugins(), and the plugin
    files the checkpoint names. A missing, truncated or corrupted file is a
    CheckpointError naming the file; a missing plugin a PluginError.
    """
    return _flows._load(_os.fspath(path), [])


def _override(key, value):
    # As `flows run --set key=value`: a string is YAML text, anything else JSON.
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={_json.dumps(value, default=_plain)}"


def run(pipeline, overrides=None, output=None, progress=True):
    """Runs a pipeline as `flows run` does and returns its metrics (a dict).

    pipeline: a YAML file (str or path) or the YAML text itself (a string
      with a newline or a colon that is not a file). Relative paths in YAML
      text (data files, plugins:) are taken from the working folder.
    overrides: {"trainer.steps": 200, ...} as `--set trainer.steps=200`
      (a string value is YAML text, as on the command line), or a list of
      "key=value" strings.
    output: the output folder (replaces the pipeline's `output`).
    progress: False is `flows run -q`.

    The returned dict is metrics.json, with "output", the folder the run
    wrote into (metrics.json, samples.csv, model.flows, report.html, ...).
    The GIL is released while the pipeline runs. Ctrl-C during training
    stops it between steps with the best parameters so far; the later stages
    (evaluate, save, ...) then run on them, the dict gets "interrupted": True
    and a RuntimeWarning says so.
    """
    if overrides is None:
        overrides = []
    elif isinstance(overrides, _Mapping):
        overrides = [_override(k, v) for k, v in overrides.items()]
    else:
        overrides = [str(o) for o in overrides]
    output = "" if output is None else _os.fspath(output)
    text_file = None
    if isinstance(pipeline, str) and not _os.path.isfile(pipeline) and (
            "\n" in pipeline or ":" in pipeline):
        handle, text_file = _tempfile.mkstemp(prefix="flows-run-", suffix=".yaml", dir=".")
        with _os.fdopen(handle, "w") as f:
            f.write(pipeline)
        path = text_file
    else:
        path = _os.fspath(pipeline)
        if not _os.path.isfile(path):
            raise ConfigError(f"{path}: cannot open the pipeline file")
    try:
        folder, interrupted = _flows._run(path, overrides, output, bool(progress))
    finally:
        if text_file is not None:
            _os.remove(text_file)
    with open(_os.path.join(folder, "metrics.json")) as f:
        metrics = _json.load(f)
    metrics["output"] = _os.path.abspath(folder)
    if interrupted:
        metrics["interrupted"] = True
        _warnings.warn("flows.run: training was interrupted (Ctrl-C); the later stages ran "
                       "on the best parameters so far", RuntimeWarning, stacklevel=2)
    return metrics


def plugins():
    """Every registered component, as `flows plugins` lists them.

    A list of dicts {"kind", "name", "origin"} ("built-in" or the plugin
    file). Plugins that fail to load are skipped with a RuntimeWarning.
    """
    import warnings
    listing, failures = _flows._plugins([])
    for message in failures:
        warnings.warn(f"skipped a plugin: {message}", RuntimeWarning, stacklevel=2)
    return listing


def load_plugins(path):
    """Adds a plugin file or folder for every later fit, load, run and plugins call.

    The plugins are loaded at once to check them (PluginError when a file
    cannot be loaded, or a folder holds no loadable plugin), and the path is
    appended to FLOWS_PLUGIN_PATH, so `flows` commands started from this
    process see it too. Returns what the path provides, as plugins() lists it.
    """
    path = _os.path.abspath(_os.fspath(path))
    provided = _flows._check_plugins(path)
    entries = [e for e in _os.environ.get("FLOWS_PLUGIN_PATH", "").split(":") if e]
    if path not in entries:
        entries.append(path)
        _os.environ["FLOWS_PLUGIN_PATH"] = ":".join(entries)
    return provided
