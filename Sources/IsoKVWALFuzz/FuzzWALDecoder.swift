import IsoKVStorage

/// libFuzzer entry point for the WAL record decoder (built only with ISOKV_FUZZ=1, see IsoKVStorage/DESIGN.md):
///
///     ISOKV_FUZZ=1 swift build -c release --sanitize=fuzzer --product isokv-wal-fuzz
///     SWIFT_BACKTRACE=enable=no .build/release/isokv-wal-fuzz -max_total_time=60 -max_len=4096
///
/// Properties checked on every input: decoding never traps (bounds, overflow, allocation); a frame scan over the
/// input as a segment body terminates; and every payload that decodes re-encodes to the identical bytes (the
/// encoding is canonical), and every accepted frame re-frames identically.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWALDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    // 1. The input as one payload.
    if let record = try? WALFormat.decodeCommitPayload(input) {
        var again: [UInt8] = []
        WALFormat.encodePayload(record, into: &again)
        precondition(again.elementsEqual(input), "decoded payload does not re-encode identically")
    }
    // 2. The input as a segment body: walk frames like recovery does.
    var offset = 0
    while offset < size {
        guard case .frame(let payload) = WALFormat.probeFrame(input, at: offset) else { break }
        precondition(payload.lowerBound == offset + WALFormat.frameHeaderBytes && payload.upperBound <= size)
        if let record = try? WALFormat.decodeCommitPayload(UnsafeRawBufferPointer(rebasing: input[payload])) {
            var frame: [UInt8] = []
            do { try WALFormat.appendFrame(record, to: &frame) } catch {
                preconditionFailure("re-framing failed: \(error)")
            }
            precondition(frame.elementsEqual(input[offset..<payload.upperBound]), "frame does not re-frame identically")
        }
        offset = payload.upperBound
    }
    return 0
}
