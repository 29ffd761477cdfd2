import CBF16

/// The arithmetic of the convolutions' multiplications. Everything else (weights, optimizer state,
/// the loss, BatchNorm, the residual sum, the heights) is fp32 in both.
public enum Precision: String, CaseIterable, Codable, Sendable {
    /// fp32 operands and sums: PyTorch's results for the same weights.
    case fp32
    /// Lightning's `bf16-mixed`: each GEMM's operands rounded to bfloat16 (8 significant bits),
    /// their products summed in fp32 (`deepdem_sgemm_bf16`), which this CPU does at twice the
    /// rate of fp32 where it has AVX512_BF16.
    case bf16Mixed = "bf16-mixed"

    /// Whether this CPU computes it; bf16-mixed needs AVX512_BF16.
    public var isAvailable: Bool {
        switch self {
        case .fp32: return true
        case .bf16Mixed: return Precision.hasBF16
        }
    }

    /// What runs when `self` is asked for, and the line that says so when it cannot.
    public var onThisCPU: (precision: Precision, note: String?) {
        isAvailable ? (self, nil) : (.fp32, "precision \(rawValue): this CPU has no AVX512_BF16; computing in fp32")
    }

    private static let hasBF16 = deepdem_bf16_available() != 0

    /// What layers built from now on use. Set once by the command line before a network is built,
    /// to an available precision.
    nonisolated(unsafe) public static var forNewLayers: Precision = .fp32
}
