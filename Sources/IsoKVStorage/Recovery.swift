#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What recovery found in a data directory: the checkpoint, then the commits to replay after it.
///
/// Apply ``checkpointEntries`` first (a copy of the committed state taken at or after ``checkpointSequence``: each
/// key as of some moment no earlier than it), then ``commits`` in order; every commit has
/// `sequence > checkpointSequence`. The result is the state at the end of the log either way (see
/// ``WriteAheadLog/checkpoint(sequence:entries:)``).
public struct RecoveredState: Sendable {
    /// The sequence the checkpoint covers (0 when there is none).
    public var checkpointSequence: UInt64 = 0
    /// The committed state copied from ``checkpointSequence`` on (empty when there is no checkpoint). An entry's
    /// version may be above ``checkpointSequence``: then ``commits`` holds the record that wrote it.
    public var checkpointEntries: [KeyWrite] = []
    /// Commit records after the checkpoint, in log order.
    public var commits: [CommitRecord] = []
    /// Highest sequence seen (checkpoint or commit); the engine's next commit should use a larger one.
    public var lastSequence: UInt64 = 0
    /// Set when the last segment ended in a torn record that was (or, for `check`, would be) cut off.
    public var truncatedTail: TailTruncation?
    /// Every segment found, oldest first.
    public var segments: [SegmentSummary] = []
}

/// A torn tail: the bytes from `offset` to the end of `file` held no complete valid record (a crash mid-write).
public struct TailTruncation: Sendable, Equatable {
    public var file: String
    public var offset: Int64
    public var droppedBytes: Int64
}

/// One WAL segment as recovery saw it.
public struct SegmentSummary: Sendable, Equatable {
    public var number: UInt64
    public var file: String
    /// Valid bytes (header and whole records), i.e. the size after any tail truncation.
    public var bytes: Int64
    public var records: Int
    /// Highest commit sequence in the segment (0 if none).
    public var maxSequence: UInt64
    /// The previous segment's size recorded in this one's header.
    public var previousBytes: Int64 = 0
}

/// Reads a data directory: checkpoint, then every segment, classifying damage as a torn tail or corruption.
///
/// Rules (DESIGN.md "Why recovery is correct"):
/// 1. The checkpoint must be entirely valid (it is only ever renamed into place after an fsync).
/// 2. Segments must be numbered contiguously; every segment but the last must be entirely valid, as it was
///    fsynced before the next one was created.
/// 3. In the last segment, the first invalid or incomplete record starts the *torn tail* only if no valid record
///    frame starts anywhere after it; otherwise it is corruption in the middle of the log.
/// 4. A checksum-valid frame whose payload does not decode is corruption (a crash cannot produce it).
enum Recovery {
    /// Scans `directory`. With `repair`, a torn tail is truncated (or a torn new segment deleted) and fsynced and a
    /// stale checkpoint temp file removed; without it (`isokv check`) nothing is modified.
    static func scan(directory: String, repair: Bool, faults: FaultHook?) throws(StorageError) -> RecoveredState {
        var state = RecoveredState()
        let names = try FileIO.list(directory)
        if repair && names.contains(DataDirectory.checkpointTempName) {
            try FileIO.unlink(DataDirectory.join(directory, DataDirectory.checkpointTempName))
        }
        if names.contains(DataDirectory.checkpointName) {
            try readCheckpoint(DataDirectory.join(directory, DataDirectory.checkpointName), into: &state)
        }
        // An entry copied after the checkpoint's sequence carries a later version, whose record follows in the log
        // (so it is at most the final `lastSequence`; an entry above that is damage, which `check` reports).
        state.lastSequence = state.checkpointSequence

        let numbers = names.compactMap(DataDirectory.segmentNumber).sorted()
        if let first = numbers.first {
            for (i, n) in numbers.enumerated() where n != first + UInt64(i) {
                throw .missingSegment(file: DataDirectory.join(directory, DataDirectory.segmentName(first + UInt64(i))))
            }
        }
        var changedDirectory = false
        for (i, number) in numbers.enumerated() {
            let path = DataDirectory.join(directory, DataDirectory.segmentName(number))
            let isLast = i == numbers.count - 1
            let bytes = try FileIO.readAll(path)
            let outcome = try bytes.withRawBytes { buf throws(StorageError) in
                try scanSegment(buf, path: path, number: number, isLast: isLast, state: &state)
            }
            switch outcome {
            case .complete(let summary):
                state.segments.append(summary)
            case .tornTail(let summary, let offset):
                state.truncatedTail = TailTruncation(
                    file: path, offset: offset, droppedBytes: Int64(bytes.count) - offset)
                state.segments.append(summary)
                if repair {
                    let fd = try FileIO.open(path, O_WRONLY)
                    defer { Glibc.close(fd) }
                    try FileIO.truncate(fd, offset, path: path, faults: faults)
                    try FileIO.datasync(fd, path: path, point: .walSync, faults: faults)
                }
            case .tornHeader:
                // A crash while creating the segment: it never held an acknowledged record.
                state.truncatedTail = TailTruncation(file: path, offset: 0, droppedBytes: Int64(bytes.count))
                if repair {
                    if let faults, let e = faults.failure(at: .tailTruncate) {
                        throw .io(operation: "unlink", file: path, errno: e)
                    }
                    try FileIO.unlink(path)
                    changedDirectory = true
                }
            }
        }
        // A closed segment cut exactly at a record boundary scans clean: its successor's header says how long it was.
        for (older, newer) in zip(state.segments, state.segments.dropFirst()) where newer.previousBytes != older.bytes {
            throw .corruptSegment(
                file: older.file, offset: older.bytes,
                reason: "segment ends at \(older.bytes) but \(newer.file) records it had \(newer.previousBytes) bytes")
        }
        // Segments before the first are deleted only after a checkpoint covering them was made durable.
        if let first = state.segments.first, first.number > 1, !names.contains(DataDirectory.checkpointName) {
            throw .missingSegment(file: DataDirectory.join(directory, DataDirectory.segmentName(first.number - 1)))
        }
        if changedDirectory { try FileIO.syncDirectory(directory, faults: faults) }
        return state
    }

    enum SegmentOutcome {
        case complete(SegmentSummary)
        case tornTail(SegmentSummary, offset: Int64)
        case tornHeader
    }

    static func scanSegment(
        _ buf: UnsafeRawBufferPointer, path: String, number: UInt64, isLast: Bool,
        state: inout RecoveredState
    ) throws(StorageError) -> SegmentOutcome {
        var previousBytes: Int64 = 0
        switch WALFormat.parseHeader(
            buf, magic: WALFormat.segmentMagic, size: WALFormat.segmentHeaderBytes,
            numberOffset: 16)
        {
        case .success(let n):
            guard n == number else {
                throw .corruptSegment(file: path, offset: 16, reason: "header names segment \(n), file name \(number)")
            }
            previousBytes = Int64(
                bitPattern: UInt64(littleEndian: buf.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
        case .failure(.version(let v)):
            throw .unsupportedFormat(file: path, version: v)
        case .failure(let problem):
            // A torn header is possible only for the newest segment, and only if nothing valid follows it.
            if isLast, firstValidFrame(buf, from: 0) == nil { return .tornHeader }
            let reason: String
            if case .invalid(let r) = problem { reason = r } else { reason = "file shorter than its header" }
            throw .corruptSegment(file: path, offset: 0, reason: reason)
        }
        var summary = SegmentSummary(
            number: number, file: path, bytes: Int64(WALFormat.segmentHeaderBytes),
            records: 0, maxSequence: 0, previousBytes: previousBytes)
        var offset = WALFormat.segmentHeaderBytes
        while offset < buf.count {
            switch WALFormat.probeFrame(buf, at: offset) {
            case .frame(let payload):
                let record: CommitRecord
                do throws(RecordDecodeError) {
                    record = try WALFormat.decodeCommitPayload(UnsafeRawBufferPointer(rebasing: buf[payload]))
                } catch {
                    throw .corruptSegment(file: path, offset: Int64(offset), reason: error.description)
                }
                summary.records += 1
                summary.maxSequence = max(summary.maxSequence, record.sequence)
                state.lastSequence = max(state.lastSequence, record.sequence)
                if record.sequence > state.checkpointSequence { state.commits.append(record) }
                offset = payload.upperBound
                summary.bytes = Int64(offset)
            case .truncated, .invalid:
                let reason: String
                if case .invalid(let r) = WALFormat.probeFrame(buf, at: offset) {
                    reason = r
                } else {
                    reason = "record cut short by the end of the file"
                }
                if isLast, let next = firstValidFrame(buf, from: offset + 1) {
                    throw .corruptSegment(
                        file: path, offset: Int64(offset),
                        reason: "\(reason), followed by a valid record at offset \(next)")
                }
                guard isLast else { throw .corruptSegment(file: path, offset: Int64(offset), reason: reason) }
                return .tornTail(summary, offset: Int64(offset))
            }
        }
        return .complete(summary)
    }

    /// The offset of the first checksum-valid frame at or after `from`, if any (a byte-by-byte scan; the frame
    /// magic and header checksum make each false start cost a few nanoseconds).
    static func firstValidFrame(_ buf: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard buf.count >= WALFormat.frameHeaderBytes else { return nil }
        var offset = from
        let last = buf.count - WALFormat.frameHeaderBytes
        while offset <= last {
            if buf[offset] == 0x49, case .frame = WALFormat.probeFrame(buf, at: offset) { return offset }
            offset += 1
        }
        return nil
    }

    static func readCheckpoint(_ path: String, into state: inout RecoveredState) throws(StorageError) {
        let bytes = try FileIO.readAll(path)
        try bytes.withRawBytes { buf throws(StorageError) in
            let sequence: UInt64
            switch WALFormat.parseHeader(
                buf, magic: WALFormat.checkpointMagic, size: WALFormat.checkpointHeaderBytes,
                numberOffset: 16)
            {
            case .success(let s): sequence = s
            case .failure(.version(let v)): throw .unsupportedFormat(file: path, version: v)
            case .failure(.invalid(let r)): throw .corruptCheckpoint(file: path, offset: 0, reason: r)
            case .failure(.short):
                throw .corruptCheckpoint(file: path, offset: 0, reason: "file shorter than its header")
            }
            var entries: [KeyWrite] = []
            var offset = WALFormat.checkpointHeaderBytes
            while true {
                guard case .frame(let payload) = WALFormat.probeFrame(buf, at: offset) else {
                    let reason: String
                    switch WALFormat.probeFrame(buf, at: offset) {
                    case .invalid(let r): reason = r
                    default: reason = offset == buf.count ? "missing footer" : "entry cut short by the end of the file"
                    }
                    throw .corruptCheckpoint(file: path, offset: Int64(offset), reason: reason)
                }
                var r = ByteReader(UnsafeRawBufferPointer(rebasing: buf[payload]))
                do throws(RecordDecodeError) {
                    let kind = try r.u8()
                    if kind == WALFormat.kindCheckpointEntry {
                        entries.append(try WALFormat.decodeWrite(&r))
                        guard r.remaining == 0 else {
                            throw RecordDecodeError(reason: "trailing bytes", offset: r.offset)
                        }
                        offset = payload.upperBound
                        continue
                    }
                    guard kind == WALFormat.kindCheckpointFooter else {
                        throw RecordDecodeError(reason: "unexpected payload kind \(kind)", offset: 0)
                    }
                    let count = try r.u64()
                    let footerSequence = try r.u64()
                    guard r.remaining == 0 else { throw RecordDecodeError(reason: "trailing bytes", offset: r.offset) }
                    guard count == UInt64(entries.count), footerSequence == sequence else {
                        throw RecordDecodeError(
                            reason:
                                "footer says \(count) entries at sequence \(footerSequence), found \(entries.count) at \(sequence)",
                            offset: 0)
                    }
                    guard payload.upperBound == buf.count else {
                        throw RecordDecodeError(
                            reason: "\(buf.count - payload.upperBound) bytes after the footer", offset: 0)
                    }
                } catch {
                    throw .corruptCheckpoint(file: path, offset: Int64(offset), reason: error.reason)
                }
                break
            }
            state.checkpointSequence = sequence
            state.checkpointEntries = entries
        }
    }
}
