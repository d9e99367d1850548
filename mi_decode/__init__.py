"""mi_decode: information-theoretic decoding plugins for Hugging Face transformers.

- :class:`LocallyTypicalLogitsWarper`: locally typical sampling (Meister et al. 2023).
- :class:`MIAmplifiedLogitsProcessor` (drop-in) and :func:`generate` (fused, both branches in one forward):
  MI-amplified decoding, M3ID / CAD / CFG / VCD's plausibility cut, configured by :class:`MIConfig`.
- :func:`rank_prompts`: label-free prompt selection by mutual information with CBM calibration.
- :func:`load_model`: the embedded SmolLM2-135M-Instruct, offline, or any Hugging Face model.
"""

__version__ = "0.1.0"  # before the imports: submodules read it

from .contrastive import MIAmplifiedLogitsProcessor
from .diagnostics import MIDiagnostics
from .fused import generate
from .m3id import MIConfig, mi_amplify
from .models import DEFAULT_MODEL, embedded_model_path, load_model
from .rank import PromptRanking, rank_prompts
from .selection import select_prompts
from .templates import PromptTemplate, load_templates
from .typical import LocallyTypicalLogitsWarper

__all__ = [
    "DEFAULT_MODEL",
    "LocallyTypicalLogitsWarper",
    "MIAmplifiedLogitsProcessor",
    "MIConfig",
    "MIDiagnostics",
    "PromptRanking",
    "PromptTemplate",
    "__version__",
    "embedded_model_path",
    "generate",
    "load_model",
    "load_templates",
    "mi_amplify",
    "rank_prompts",
    "select_prompts",
]
