/// The on-disk format: file headers, record frames and payloads (see DESIGN.md "Record format").
///
/// All integers are little-endian. A *frame* wraps every record and checkpoint entry:
///
/// ```
///  0  u32 magic 0x52564B49 ("IKVR")
///  4  u32 payload length n   (≤ maxPayloadBytes)
///  8  u32 CRC-32C of the payload
/// 12  u32 CRC-32C of bytes 0..<12   (so a scan can reject a false start without reading n bytes)
/// 16  n payload bytes
/// ```
public enum WALFormat {
    /// Version written in every segment and checkpoint header; readers refuse any other.
    public static let version: UInt32 = 1
    /// Frame magic, "IKVR" in little-endian.
    static let frameMagic: UInt32 = 0x5256_4B49
    /// Bytes before a frame's payload.
    public static let frameHeaderBytes = 16
    /// Largest payload (one commit record or checkpoint entry), 64 MiB. Larger commits are refused at append.
    public static let maxPayloadBytes = 64 << 20
    /// Largest key, 1 MiB (the engine's own limits are smaller).
    public static let maxKeyBytes = 1 << 20

    /// Segment header: magic "IKVWAL\0\0", u32 version, u32 0, u64 segment number, u64 size in bytes of the
    /// previous segment when this one was created (0 for the first), u32 CRC-32C of bytes 0..<32, u32 0.
    /// The previous size lets recovery notice a closed segment cut at a record boundary.
    static let segmentMagic: [UInt8] = Array("IKVWAL".utf8) + [0, 0]
    public static let segmentHeaderBytes = 40
    /// Checkpoint header: magic "IKVCKPT\0", u32 version, u32 0, u64 covered sequence, u64 0, u32 CRC-32C of
    /// bytes 0..<32, u32 0.
    static let checkpointMagic: [UInt8] = Array("IKVCKPT".utf8) + [0]
    public static let checkpointHeaderBytes = 40

    /// Payload kinds (first payload byte).
    static let kindCommit: UInt8 = 1
    static let kindCheckpointEntry: UInt8 = 2
    static let kindCheckpointFooter: UInt8 = 3

    // MARK: Payloads

    /// Commit payload: u8 kind=1, u64 sequence, u32 write count, then per write: u8 flags (bit 0 = tombstone),
    /// u64 version, u32 key length, key, and unless a tombstone u32 value length, value.
    public static func encodePayload(_ record: CommitRecord, into out: inout [UInt8]) {
        out.append(kindCommit)
        out.appendLE(record.sequence)
        out.appendLE(UInt32(truncatingIfNeeded: record.writes.count))
        for w in record.writes { encodeWrite(w, into: &out) }
    }

    static func encodeWrite(_ w: KeyWrite, into out: inout [UInt8]) {
        out.append(w.value == nil ? 1 : 0)
        out.appendLE(w.version)
        out.appendLE(UInt32(truncatingIfNeeded: w.key.count))
        out.append(contentsOf: w.key)
        if let v = w.value {
            out.appendLE(UInt32(truncatingIfNeeded: v.count))
            out.append(contentsOf: v)
        }
    }

    /// Decodes a commit payload. Never traps: any malformed input is a ``RecordDecodeError``.
    public static func decodeCommitPayload(_ payload: UnsafeRawBufferPointer) throws(RecordDecodeError) -> CommitRecord
    {
        var r = ByteReader(payload)
        let kind = try r.u8()
        guard kind == kindCommit else {
            throw RecordDecodeError(reason: "payload kind \(kind) is not a commit", offset: 0)
        }
        let sequence = try r.u64()
        let count = try r.u32()
        // Each write takes at least 13 bytes: bound the count before reserving memory for it.
        guard Int(count) <= r.remaining / 13 else {
            throw RecordDecodeError(reason: "write count \(count) cannot fit in \(r.remaining) bytes", offset: r.offset)
        }
        var writes: [KeyWrite] = []
        writes.reserveCapacity(Int(count))
        for _ in 0..<count { writes.append(try decodeWrite(&r)) }
        guard r.remaining == 0 else {
            throw RecordDecodeError(reason: "\(r.remaining) trailing bytes after the last write", offset: r.offset)
        }
        return CommitRecord(sequence: sequence, writes: writes)
    }

    static func decodeWrite(_ r: inout ByteReader) throws(RecordDecodeError) -> KeyWrite {
        let flags = try r.u8()
        guard flags <= 1 else { throw RecordDecodeError(reason: "unknown write flags \(flags)", offset: r.offset - 1) }
        let version = try r.u64()
        let keyLength = try r.u32()
        guard keyLength <= maxKeyBytes else {
            throw RecordDecodeError(reason: "key length \(keyLength) exceeds \(maxKeyBytes)", offset: r.offset - 4)
        }
        let key = try r.bytes(Int(keyLength))
        var value: [UInt8]? = nil
        if flags == 0 {
            let valueLength = try r.u32()
            value = try r.bytes(Int(valueLength))
        }
        return KeyWrite(key: key, value: value, version: version)
    }

    /// Checkpoint entry payload: u8 kind=2 then one write as in a commit.
    static func encodeCheckpointEntry(_ w: KeyWrite, into out: inout [UInt8]) {
        out.append(kindCheckpointEntry)
        encodeWrite(w, into: &out)
    }

    /// Checkpoint footer payload: u8 kind=3, u64 entry count, u64 covered sequence.
    static func encodeCheckpointFooter(entries: UInt64, sequence: UInt64, into out: inout [UInt8]) {
        out.append(kindCheckpointFooter)
        out.appendLE(entries)
        out.appendLE(sequence)
    }

    // MARK: Frames

    /// Appends one framed record to `out` (the bytes the flusher writes).
    /// Throws ``StorageError/recordTooLarge(bytes:limit:)`` for payloads over ``maxPayloadBytes``.
    public static func appendFrame(_ record: CommitRecord, to out: inout [UInt8]) throws(StorageError) {
        for w in record.writes { try checkKey(w.key) }
        try appendFrame(to: &out) { encodePayload(record, into: &$0) }
    }

    /// Refuses keys the decoder would refuse (so nothing unreadable is ever written).
    static func checkKey(_ key: [UInt8]) throws(StorageError) {
        guard key.count <= maxKeyBytes else { throw .keyTooLarge(bytes: key.count, limit: maxKeyBytes) }
    }

    static func appendFrame(to out: inout [UInt8], payload: (inout [UInt8]) -> Void) throws(StorageError) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: frameHeaderBytes))
        payload(&out)
        let n = out.count - start - frameHeaderBytes
        guard n <= maxPayloadBytes else {
            out.removeSubrange(start...)
            throw .recordTooLarge(bytes: n, limit: maxPayloadBytes)
        }
        out.withUnsafeMutableBytes { buf in
            let h = buf.baseAddress! + start
            let payloadCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: h + frameHeaderBytes, count: n))
            h.storeBytes(of: frameMagic.littleEndian, toByteOffset: 0, as: UInt32.self)
            h.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 4, as: UInt32.self)
            h.storeBytes(of: payloadCRC.littleEndian, toByteOffset: 8, as: UInt32.self)
            let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: h, count: 12))
            h.storeBytes(of: headerCRC.littleEndian, toByteOffset: 12, as: UInt32.self)
        }
    }

    /// What sits at one offset of a segment or checkpoint body.
    public enum FrameProbe: Equatable, Sendable {
        /// A whole, checksum-valid frame whose payload is `payload` (a range of the buffer).
        case frame(payload: Range<Int>)
        /// The bytes end before a frame could be complete (`needed` bytes from the offset would be required).
        case truncated(needed: Int)
        /// The bytes are not a valid frame; `reason` says which check failed.
        case invalid(reason: String)
    }

    /// Checks the frame at `offset` of `bytes` (header, both checksums) without decoding its payload.
    public static func probeFrame(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> FrameProbe {
        let left = bytes.count - offset
        guard left >= frameHeaderBytes else { return .truncated(needed: frameHeaderBytes) }
        let h = bytes.baseAddress! + offset
        let magic = UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let n = Int(UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let payloadCRC = UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let headerCRC = UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard magic == frameMagic else { return .invalid(reason: "bad frame magic") }
        guard CRC32C.checksum(UnsafeRawBufferPointer(start: h, count: 12)) == headerCRC else {
            return .invalid(reason: "frame header checksum mismatch")
        }
        guard n <= maxPayloadBytes else { return .invalid(reason: "payload length \(n) over the limit") }
        guard left - frameHeaderBytes >= n else { return .truncated(needed: frameHeaderBytes + n) }
        guard CRC32C.checksum(UnsafeRawBufferPointer(start: h + frameHeaderBytes, count: n)) == payloadCRC else {
            return .invalid(reason: "payload checksum mismatch")
        }
        let start = offset + frameHeaderBytes
        return .frame(payload: start..<(start + n))
    }

    // MARK: Headers

    static func segmentHeader(number: UInt64, previousBytes: Int64) -> [UInt8] {
        var h = segmentMagic
        h.appendLE(version)
        h.appendLE(UInt32(0))
        h.appendLE(number)
        h.appendLE(UInt64(previousBytes))
        h.appendLE(CRC32C.checksum(h))
        h.appendLE(UInt32(0))
        return h
    }

    static func checkpointHeader(sequence: UInt64) -> [UInt8] {
        var h = checkpointMagic
        h.appendLE(version)
        h.appendLE(UInt32(0))
        h.appendLE(sequence)
        h.appendLE(UInt64(0))
        h.appendLE(CRC32C.checksum(h))
        h.appendLE(UInt32(0))
        return h
    }

    /// Parses a header; returns the u64 at `numberOffset` (segment number or covered sequence) or a reason.
    static func parseHeader(_ bytes: UnsafeRawBufferPointer, magic: [UInt8], size: Int, numberOffset: Int)
        -> Result<UInt64, HeaderProblem>
    {
        guard bytes.count >= size else { return .failure(.short) }
        guard bytes.prefix(8).elementsEqual(magic) else { return .failure(.invalid("bad file magic")) }
        let crcOffset = size - 8
        let crc = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: crcOffset, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes.prefix(crcOffset))) == crc else {
            return .failure(.invalid("header checksum mismatch"))
        }
        let v = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard v == version else { return .failure(.version(v)) }
        return .success(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: numberOffset, as: UInt64.self)))
    }

    enum HeaderProblem: Error {
        case short
        case invalid(String)
        case version(UInt32)
    }
}

/// A bounds-checked little-endian reader over raw bytes; every read throws instead of trapping.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    var remaining: Int { base.count - offset }

    private mutating func need(_ n: Int) throws(RecordDecodeError) {
        guard n <= remaining else {
            throw RecordDecodeError(reason: "needs \(n) bytes, \(remaining) left", offset: offset)
        }
    }

    mutating func u8() throws(RecordDecodeError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return base[offset]
    }

    mutating func u32() throws(RecordDecodeError) -> UInt32 {
        try need(4)
        defer { offset += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func u64() throws(RecordDecodeError) -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    mutating func bytes(_ n: Int) throws(RecordDecodeError) -> [UInt8] {
        try need(n)
        defer { offset += n }
        return Array(UnsafeRawBufferPointer(rebasing: base[offset..<(offset + n)]))
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE(_ v: UInt32) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendLE(_ v: UInt64) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}
