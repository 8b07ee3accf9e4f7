"""What a count returns, whoever counted: fvcore on a PyTorch model (``counting.macs``) or the ONNX graph
counter (``counting.onnx_graph``)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Operator names of convolutions as each counter reports them: fvcore's ``conv`` (transposed ones included)
#: and the ONNX operator types.
CONVOLUTION_OPERATORS = ("conv", "Conv", "ConvTranspose")


@dataclass
class CountResult:
    """MACs and parameters of one model at one input shape (batch 1 unless stated).

    ``by_operator`` holds the MACs per operator in the counter's own names (fvcore: ``conv``, ``linear``,
    ...; ONNX: ``Conv``, ``Gemm``, ...); ``uncounted`` the operators that were not counted (operator ->
    calls or nodes). ``by_module`` and ``params_by_module`` exist only where a PyTorch model was counted.
    """

    macs: int
    params: int
    input_shape: tuple[int, ...]
    convention: str  # the counting rule, or why none applies (a graph counted as given)
    by_operator: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    params_by_module: dict[str, int] = field(default_factory=dict)
    counted_by: str = "fvcore"  # fvcore on the PyTorch model, or onnx for a model given as an ONNX file
    cached: bool = False

    @property
    def conv_macs(self) -> int:
        """MACs of the convolutions alone (as they cost once their kernels exist)."""
        return sum(self.by_operator.get(op, 0) for op in CONVOLUTION_OPERATORS)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6
