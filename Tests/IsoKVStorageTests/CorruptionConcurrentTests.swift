import Foundation
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

/// Random damage to a data directory: every outcome is either a clean prefix of the history or a typed error.
/// "Concurrent": every test runs the log's flusher thread beside the test task, so scripts/test runs it under TSan.
@Suite struct CorruptionConcurrentTests {
    /// Builds a directory with a checkpoint at sequence 120 and several segments after it.
    /// Returns the checkpoint's entries, the records after it, and every record appended (sequence i at index i-1).
    func makeStore(_ dir: TemporaryDirectory) async throws -> (
        checkpoint: [KeyWrite], records: [CommitRecord], all: [CommitRecord]
    ) {
        var rng = SplitMix64(seed: 30)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path, options: WALOptions(segmentBytes: 4096))
        let entries = (0..<40).map {
            KeyWrite(key: bytes("key\($0)"), value: bytes("value \($0)"), version: UInt64($0))
        }
        var records: [CommitRecord] = [], all: [CommitRecord] = []
        for i in 1...120 {
            let r = randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 100)
            try await log.append(r)
            all.append(r)
        }
        try await log.checkpoint(sequence: 120, entries: AsyncEntries(entries))
        for i in 121...260 {
            let r = randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 100)
            try await log.append(r)
            records.append(r)
            all.append(r)
        }
        await log.close()
        return (entries, records, all)
    }

    func copyDirectory(_ from: TemporaryDirectory) throws -> TemporaryDirectory {
        let to = TemporaryDirectory("damaged")
        for name in try FileManager.default.contentsOfDirectory(atPath: from.path) where name != "LOCK" {
            try FileManager.default.copyItem(atPath: from.file(name), toPath: to.file(name))
        }
        return to
    }

    @Test func randomByteFlipsAndTruncations() async throws {
        let original = TemporaryDirectory("pristine")
        defer { original.remove() }
        let (entries, records, all) = try await makeStore(original)
        let files = try FileManager.default.contentsOfDirectory(atPath: original.path).filter { $0 != "LOCK" }.sorted()
        #expect(files.count >= 4)
        let lastSegment = try #require(files.filter { $0.hasPrefix("wal-") }.last)
        // Where each record of the last segment ends (computed from the records, not read back by recovery), and
        // the sequence before its first record: damage at an offset leaves exactly the records ending before it.
        let pristine = try WriteAheadLog.check(directory: original.path)
        let last = try #require(pristine.segments.last)
        #expect(last.file.hasSuffix(lastSegment))
        let beforeLast = last.maxSequence - UInt64(last.records)
        var ends: [Int] = []
        var end = WALFormat.segmentHeaderBytes
        for seq in (beforeLast + 1)...last.maxSequence {
            var frame: [UInt8] = []
            try WALFormat.appendFrame(all[Int(seq) - 1], to: &frame)
            end += frame.count
            ends.append(end)
        }
        #expect(ends.last == Int(last.bytes) && fileSize(original.file(lastSegment)) == Int(last.bytes))
        var rng = SplitMix64(seed: testSeed("randomByteFlipsAndTruncations"))
        var outcomes = (prefix: 0, error: 0)
        // Every file is damaged in turn, and every third visit to a file truncates it, so each file is both flipped
        // and truncated (at random offsets) whatever the seed. Picking the file at random too once left the last
        // segment untruncated for a whole run, and then no outcome was a prefix.
        let rounds = 120
        #expect(rounds >= 10 * files.count)
        for round in 0..<rounds {
            let dir = try copyDirectory(original)
            defer { dir.remove() }
            let name = files[round % files.count]
            let size = fileSize(dir.file(name))
            let truncate = (round / files.count) % 3 == 0
            let offset = Int.random(in: 0..<size, using: &rng)
            try rewriteFile(dir.file(name)) { data in
                if truncate {
                    data.removeSubrange(offset...)
                } else {
                    data[offset] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                }
            }
            let what = "\(truncate ? "truncate" : "flip") \(name) at \(offset)"
            do {
                let (log, state) = try await WriteAheadLog.open(directory: dir.path)
                await log.close()
                // Accepted: then it must be exactly the checkpoint plus a prefix of the records.
                #expect(state.checkpointEntries == entries, "\(what)")
                #expect(state.checkpointSequence == 120, "\(what)")
                #expect(Array(records.prefix(state.commits.count)) == state.commits, "\(what)")
                // Only damage in the last segment may shorten the history, and then to exactly the records wholly
                // before the damage (a damaged header is refused or read as an empty tail: not counted here).
                if name != lastSegment {
                    #expect(state.commits.count == records.count, "\(what)")
                } else if offset >= WALFormat.segmentHeaderBytes {
                    let intact = beforeLast + UInt64(ends.filter { $0 <= offset }.count)
                    #expect(
                        state.commits.count == Int(intact) - 120,
                        "\(what): recovered \(state.commits.count) records after the checkpoint, intact prefix \(Int(intact) - 120)"
                    )
                }
                outcomes.prefix += 1
            } catch let error as StorageError {
                switch error {
                case .corruptSegment(let file, _, _), .corruptCheckpoint(let file, _, _):
                    #expect(file == dir.file(name), "\(what): \(error)")
                case .missingSegment, .unsupportedFormat:
                    break
                default:
                    Issue.record("\(what): unexpected error \(error)")
                }
                outcomes.error += 1
            }
        }
        // A truncated last segment is always a prefix (a torn tail or a torn header); damage to the checkpoint is
        // always an error.
        #expect(outcomes.prefix > 0 && outcomes.error > 0, "\(outcomes)")
    }

    @Test func closedSegmentCutAtARecordBoundaryIsDetected() async throws {
        let dir = TemporaryDirectory("cut")
        defer { dir.remove() }
        var rng = SplitMix64(seed: 32)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path, options: WALOptions(segmentBytes: 4096))
        for i in 1...100 { try await log.append(randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 100)) }
        await log.close()
        let first = dir.file(dir.segments()[0])
        let state = try WriteAheadLog.check(directory: dir.path)
        // Drop exactly the last record of the first segment.
        let firstRecords = state.commits.prefix(state.segments[0].records)
        var frame: [UInt8] = []
        try WALFormat.appendFrame(try #require(firstRecords.last), to: &frame)
        try rewriteFile(first) { $0.removeLast(frame.count) }
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.check(directory: dir.path) }
        do { _ = try WriteAheadLog.check(directory: dir.path) } catch {
            guard case .corruptSegment(let file, _, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(file == first)
        }
    }
}
