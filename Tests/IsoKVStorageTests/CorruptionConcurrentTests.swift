import Foundation
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

/// Random damage to a data directory: every outcome is either a clean prefix of the history or a typed error.
/// "Concurrent": every test runs the log's flusher thread beside the test task, so scripts/test runs it under TSan.
@Suite struct CorruptionConcurrentTests {
    /// Builds a directory with a checkpoint at sequence 120 and several segments after it.
    func makeStore(_ dir: TemporaryDirectory) async throws -> (checkpoint: [KeyWrite], records: [CommitRecord]) {
        var rng = SplitMix64(seed: 30)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path, options: WALOptions(segmentBytes: 4096))
        let entries = (0..<40).map {
            KeyWrite(key: bytes("key\($0)"), value: bytes("value \($0)"), version: UInt64($0))
        }
        var records: [CommitRecord] = []
        for i in 1...120 {
            let r = randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 100)
            try await log.append(r)
        }
        try await log.checkpoint(sequence: 120, entries: AsyncEntries(entries))
        for i in 121...260 {
            let r = randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 100)
            try await log.append(r)
            records.append(r)
        }
        await log.close()
        return (entries, records)
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
        let (entries, records) = try await makeStore(original)
        let files = try FileManager.default.contentsOfDirectory(atPath: original.path).filter { $0 != "LOCK" }.sorted()
        #expect(files.count >= 4)
        let lastSegment = files.filter { $0.hasPrefix("wal-") }.last!
        var rng = SplitMix64(seed: UInt64(ProcessInfo.processInfo.environment["ISOKV_SEED"] ?? "31") ?? 31)
        var outcomes = (prefix: 0, error: 0)
        for round in 0..<120 {
            let dir = try copyDirectory(original)
            defer { dir.remove() }
            let name = files.randomElement(using: &rng)!
            let size = fileSize(dir.file(name))
            let truncate = round % 3 == 0
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
                // Only damage in the last segment's tail may shorten the history.
                if state.commits.count < records.count { #expect(name == lastSegment, "\(what)") }
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
        #expect(outcomes.prefix > 0 && outcomes.error > 0)
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
        try WALFormat.appendFrame(firstRecords.last!, to: &frame)
        try rewriteFile(first) { $0.removeLast(frame.count) }
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.check(directory: dir.path) }
        do { _ = try WriteAheadLog.check(directory: dir.path) } catch {
            guard case .corruptSegment(let file, _, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(file == first)
        }
    }
}
