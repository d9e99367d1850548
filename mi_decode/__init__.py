"""mi_decode: information-theoretic decoding plugins for Hugging Face transformers.

- :class:`LocallyTypicalLogitsWarper`: locally typical sampling (Meister et al. 2023).
- :class:`MIAmplifiedLogitsProcessor` (drop-in) and :func:`generate` (fused, both branches in one forward):
  MI-amplified decoding, M3ID / CAD / CFG / AdaCAD's adaptive weight / VCD's plausibility cut, configured by
  :class:`MIConfig`.
- :func:`rank_prompts`: label-free prompt selection by mutual information with CBM calibration.
- :func:`load_model`: the embedded SmolLM2-135M-Instruct, offline, or any Hugging Face model.
"""

__version__ = "0.1.0"  # before the imports: submodules read it

# Imported on first use (PEP 562), so that ``mi-decode --help`` and argument errors do not wait for torch.
_EXPORTS = {
    "LocallyTypicalLogitsWarper": "typical",
    "MIAmplifiedLogitsProcessor": "contrastive",
    "MIConfig": "m3id",
    "MIDiagnostics": "diagnostics",
    "PromptRanking": "rank",
    "PromptTemplate": "templates",
    "cpu_small_batch_linears": "cpu_linears",
    "DEFAULT_MODEL": "models",
    "embedded_model_path": "models",
    "generate": "fused",
    "load_model": "models",
    "load_templates": "templates",
    "mi_amplify": "m3id",
    "rank_prompts": "rank",
    "select_prompts": "selection",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mi_decode' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "DEFAULT_MODEL",
    "LocallyTypicalLogitsWarper",
    "MIAmplifiedLogitsProcessor",
    "MIConfig",
    "MIDiagnostics",
    "PromptRanking",
    "PromptTemplate",
    "__version__",
    "cpu_small_batch_linears",
    "embedded_model_path",
    "generate",
    "load_model",
    "load_templates",
    "mi_amplify",
    "rank_prompts",
    "select_prompts",
]
