"""Per-step diagnostics of MI-amplified decoding, as plain data (plotting belongs to the evaluation suite)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch


@dataclass
class MIDiagnostics:
    """What the MI rule did at each generated token, indexed ``[step - 1][row]``.

    Attributes:
        weight: the weight applied to l_c - l_u (0 where M3ID's gate was closed).
        gate: whether the correction was applied.
        pointwise_mi: log p_c(y) - log p_u(y) of the token y actually chosen at that step; how much the
            condition (document, image) raised that token over the language prior. It is expected to decay
            over a generation, which is the observation M3ID is built on.

    With the drop-in processor the chosen token is only known at the next call, so the last step's
    ``pointwise_mi`` is filled by :meth:`MIAmplifiedLogitsProcessor.finish_diagnostics`.
    """

    weight: list[list[float]] = field(default_factory=list)
    gate: list[list[bool]] = field(default_factory=list)
    pointwise_mi: list[list[float]] = field(default_factory=list)

    def record_rule(self, weight: torch.Tensor, gate: torch.Tensor) -> None:
        self.weight.append(weight.tolist())
        self.gate.append(gate.tolist())

    def record_choice(self, pointwise_mi: torch.Tensor, tokens: torch.Tensor) -> None:
        """Record l_c - l_u (B, V) at the chosen ``tokens`` (B,)."""
        self.pointwise_mi.append(pointwise_mi.gather(1, tokens[:, None]).squeeze(1).tolist())

    def clear(self) -> None:
        self.weight.clear()
        self.gate.clear()
        self.pointwise_mi.clear()

    def to_dict(self) -> dict[str, list]:
        return asdict(self)
