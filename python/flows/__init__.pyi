# Type hints for the flows package (the API is documented in docs/python.md).
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike
Section = Union[Mapping[str, Any], str, None]
PathLike = Union[str, os.PathLike[str]]

DEFAULT_MODEL: dict[str, Any]

class Error(Exception):
    """Every error flows raises; str(e) is the text `flows` prints after 'error: '."""

class ConfigError(Error):
    """A section key is missing, unknown, mistyped or out of range (with its key path)."""

class DataError(Error):
    """Input rows do not fit: shape, columns, context, non-finite values."""

class NumericalError(Error):
    """The training loss became NaN or infinite, or an ODE solve failed."""

class PluginError(Error):
    """A plugin could not be found or loaded, or a model needs one that is missing."""

class CheckpointError(Error):
    """A model file is missing, truncated, corrupted, of another format, or cannot be written."""

class IoError(Error):
    """Another file could not be read or written."""

class Progress(TypedDict):
    step: int
    total_steps: int
    loss: float
    val_loss: float
    lr: float
    seconds: float

class Component(TypedDict):
    kind: str
    name: str
    origin: str

class Model:
    """A trained flow: p(x), or p(x | c) for a conditional model."""

    @property
    def dim(self) -> int:
        """Number of x columns."""
    @property
    def columns(self) -> list[str]:
        """Names of the x columns (empty when unnamed)."""
    @property
    def context_columns(self) -> list[str]:
        """Names of the context columns (empty: unconditional)."""
    @property
    def training(self) -> Optional[dict[str, Any]]:
        """For a model from fit(): steps, best_step, best_val_loss, stopped_early,
        interrupted, seconds, loss_name and curve; None for a loaded model."""
    def log_prob(self, x: ArrayLike, context: Optional[ArrayLike] = None) -> np.ndarray:
        """log p(x) (log p(x | c)) per row, in nats and the data's units: shape (rows,)."""
    def sample(self, n: int, context: Optional[ArrayLike] = None,
               seed: Optional[int] = None) -> np.ndarray:
        """n samples, shape (n, dim). A conditional model takes n context rows or one
        row shared by all. seed=None draws a fresh seed; a given seed reproduces
        `flows sample -n n --seed seed`."""
    def sample_and_log_prob(self, n: int, context: Optional[ArrayLike] = None,
                            seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Samples (n, dim) and their log-densities (n,), from one pass."""
    def bits_per_dim(self, x: ArrayLike, context: Optional[ArrayLike] = None) -> float:
        """Mean negative log-likelihood of the rows / (dim ln 2), as
        `flows evaluate --bits-per-dim`."""
    def save(self, path: PathLike) -> None:
        """Writes the model file (model.flows format) atomically."""
    def info(self) -> dict[str, Any]:
        """What `flows info` shows: name, dim, columns, context_columns, parameters,
        trained_steps, standardize, seed, components, model_yaml, pipeline_yaml, ..."""

def fit(x: ArrayLike, *, context: Optional[ArrayLike] = None, val: Optional[ArrayLike] = None,
        val_context: Optional[ArrayLike] = None, model: Section = None,
        trainer: Section = None, data: Section = None, seed: int = 0, progress: bool = True,
        callback: Optional[Callable[[Progress], Optional[bool]]] = None,
        columns: Optional[Sequence[str]] = None,
        context_columns: Optional[Sequence[str]] = None, name: str = "fit") -> Model:
    """Trains a flow on the rows of x (see docs/python.md)."""

def load(path: PathLike) -> Model:
    """Loads a saved model file."""

def run(pipeline: Union[PathLike, str],
        overrides: Union[Mapping[str, Any], Sequence[str], None] = None,
        output: Optional[PathLike] = None, progress: bool = True) -> dict[str, Any]:
    """Runs a pipeline file (or YAML text) as `flows run` and returns metrics.json as a dict."""

def plugins() -> list[Component]:
    """Every registered component, as `flows plugins` lists them."""

def load_plugins(path: PathLike) -> list[Component]:
    """Adds a plugin file or folder for later calls; returns what it provides."""
