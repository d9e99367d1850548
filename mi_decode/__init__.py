"""mi_decode: information-theoretic decoding plugins for Hugging Face transformers."""

from .models import DEFAULT_MODEL, load_model
from .typical import LocallyTypicalLogitsWarper

__version__ = "0.1.0"

__all__ = ["DEFAULT_MODEL", "LocallyTypicalLogitsWarper", "load_model", "__version__"]
