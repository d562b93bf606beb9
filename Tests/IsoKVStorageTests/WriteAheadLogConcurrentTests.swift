import Foundation
import Synchronization
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

/// "Concurrent": every test runs the log's flusher thread beside the test task, so scripts/test runs it under TSan.
@Suite struct WriteAheadLogConcurrentTests {
    @Test func appendCloseReopenReplaysEverything() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix64(seed: 10)
        let records = (1...50).map { randomRecord(sequence: UInt64($0), rng: &rng) }
        for mode in DurabilityMode.allCases {
            let sub = dir.path + "/" + mode.rawValue
            let (log, first) = try await WriteAheadLog.open(directory: sub, options: WALOptions(durability: mode))
            #expect(first.commits.isEmpty && first.lastSequence == 0)
            for r in records { try await log.append(r) }
            await log.close()
            await #expect(throws: StorageError.closed) { try await log.append(records[0]) }
            let (again, recovered) = try await WriteAheadLog.open(directory: sub)
            #expect(recovered.commits == records)
            #expect(recovered.lastSequence == 50)
            #expect(recovered.truncatedTail == nil)
            await again.close()
        }
    }

    @Test func segmentsRotateAndAllReplay() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix64(seed: 11)
        let records = (1...400).map { randomRecord(sequence: UInt64($0), rng: &rng, maxValue: 200) }
        let (log, _) = try await WriteAheadLog.open(directory: dir.path, options: WALOptions(segmentBytes: 4096))
        for r in records { try await log.append(r) }
        let stats = log.statistics
        #expect(stats.segmentsCreated > 5)
        #expect(stats.appends == 400)
        await log.close()
        #expect(dir.segments().count == Int(stats.segmentsCreated))
        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        #expect(recovered.commits == records)
        #expect(recovered.segments.map(\.number) == Array(1...stats.segmentsCreated))
        await again.close()
    }

    @Test func checkpointThenReplayOnlyNewerAndDeleteCoveredSegments() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let kv = try await DurableKeyValueLog.open(directory: dir.path, options: WALOptions(segmentBytes: 4096))
        for i in 0..<300 {
            try await kv.commit { _ in
                [(bytes("k\(i % 37)"), bytes("v\(i)")), (bytes("d\(i % 5)"), i % 2 == 0 ? nil : [1])]
            }
        }
        let segmentsBefore = dir.segments().count
        try await kv.checkpoint()
        #expect(kv.log.statistics.checkpoints == 1)
        #expect(dir.segments().count < segmentsBefore)
        #expect(dir.segments().count >= 1)
        for i in 300..<320 { try await kv.commit { _ in [(bytes("k\(i % 37)"), bytes("v\(i)"))] } }
        let expected = kv.snapshot()
        await kv.close()

        let (log, recovered) = try await WriteAheadLog.open(directory: dir.path)
        #expect(recovered.checkpointSequence == 300)
        #expect(recovered.commits.map(\.sequence) == Array(301...320))
        await log.close()
        let again = try await DurableKeyValueLog.open(directory: dir.path)
        let got = again.snapshot()
        #expect(got.sequence == expected.sequence)
        #expect(got.map == expected.map)
        #expect(again.get(bytes("k0"))?.version == expected.map[bytes("k0")]?.version)
        await again.close()
    }

    @Test func secondOpenerGetsDirectoryLockedUntilClose() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try await WriteAheadLog.open(directory: dir.path)
        await #expect(throws: StorageError.directoryLocked(path: dir.path)) {
            _ = try await WriteAheadLog.open(directory: dir.path)
        }
        await log.close()
        let (again, _) = try await WriteAheadLog.open(directory: dir.path)
        await again.close()
    }

    @Test func tornTailIsTruncatedAndLaterAppendsSurvive() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix64(seed: 12)
        let records = (1...20).map { randomRecord(sequence: UInt64($0), rng: &rng) }
        let (log, _) = try await WriteAheadLog.open(directory: dir.path)
        for r in records { try await log.append(r) }
        await log.close()
        // A crash mid-write: half of a valid next frame at the end of the last segment.
        var frame: [UInt8] = []
        try WALFormat.appendFrame(randomRecord(sequence: 21, rng: &rng), to: &frame)
        let last = dir.file(try #require(dir.segments().last))
        let size = fileSize(last)
        try rewriteFile(last) { $0.append(contentsOf: frame[..<(frame.count / 2)]) }

        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        #expect(recovered.commits == records)
        #expect(
            recovered.truncatedTail
                == TailTruncation(file: last, offset: Int64(size), droppedBytes: Int64(frame.count / 2)))
        #expect(fileSize(last) == size)
        let extra = randomRecord(sequence: 22, rng: &rng)
        try await again.append(extra)
        await again.close()
        let (third, final) = try await WriteAheadLog.open(directory: dir.path)
        #expect(final.commits == records + [extra])
        await third.close()
    }

    @Test func corruptionBeforeTheTailIsAnErrorNamingFileAndOffset() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix64(seed: 13)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path)
        for i in 1...10 { try await log.append(randomRecord(sequence: UInt64(i), rng: &rng)) }
        await log.close()
        let segment = dir.file(dir.segments()[0])
        // Damage the payload of the first record: later records are valid, so this is not a torn tail.
        let offset = WALFormat.segmentHeaderBytes + WALFormat.frameHeaderBytes + 2
        try rewriteFile(segment) { $0[offset] ^= 0x40 }
        do {
            _ = try await WriteAheadLog.open(directory: dir.path)
            Issue.record("open succeeded on a corrupt segment")
        } catch let error as StorageError {
            guard case .corruptSegment(let file, let at, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(file == segment)
            #expect(at == Int64(WALFormat.segmentHeaderBytes))
            #expect(reason.contains("checksum"))
        }
    }

    @Test func corruptCheckpointIsAnError() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let kv = try await DurableKeyValueLog.open(directory: dir.path)
        for i in 0..<10 { try await kv.commit { _ in [(bytes("k\(i)"), bytes("v\(i)"))] } }
        try await kv.checkpoint()
        await kv.close()
        let path = dir.file(DataDirectory.checkpointName)
        try rewriteFile(path) { $0[$0.count - 30] ^= 1 }
        await #expect(throws: StorageError.self) { _ = try await WriteAheadLog.open(directory: dir.path) }
        do { _ = try await WriteAheadLog.open(directory: dir.path) } catch let error as StorageError {
            guard case .corruptCheckpoint(let file, _, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(file == path)
        }
    }

    @Test func missingMiddleSegmentIsAnError() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix64(seed: 14)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path, options: WALOptions(segmentBytes: 4096))
        for i in 1...200 { try await log.append(randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 100)) }
        await log.close()
        let segments = dir.segments()
        #expect(segments.count >= 3)
        try FileManager.default.removeItem(atPath: dir.file(segments[1]))
        await #expect(throws: StorageError.missingSegment(file: dir.file(segments[1]))) {
            _ = try await WriteAheadLog.open(directory: dir.path)
        }
    }

    @Test func checkIsReadOnly() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix64(seed: 15)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path)
        for i in 1...5 { try await log.append(randomRecord(sequence: UInt64(i), rng: &rng)) }
        await log.close()
        let last = dir.file(try #require(dir.segments().last))
        try rewriteFile(last) { $0.append(contentsOf: [0x49, 0x4B, 0x56]) }
        let size = fileSize(last)
        let report = try WriteAheadLog.check(directory: dir.path)
        #expect(report.commits.count == 5)
        #expect(report.truncatedTail?.droppedBytes == 3)
        #expect(fileSize(last) == size)
    }

    @Test func unsafeNoSyncAppliesBackPressureWhenTheQueueIsFull() async throws {
        let dir = TemporaryDirectory("backpressure")
        defer { dir.remove() }
        // Every batch write stalls 20 ms, so the queue fills while the flusher is busy.
        let slowWrites = FaultHook { point in
            if point == .walWrite { usleep(20_000) }
            return nil
        }
        let (log, _) = try await WriteAheadLog.open(
            directory: dir.path,
            options: WALOptions(durability: .unsafeNoSync, maxQueuedBytes: 4096, faults: slowWrites))
        var rng = SplitMix64(seed: 40)
        var records: [CommitRecord] = []
        var overLimit = 0
        for i in 1...40 {
            let r = CommitRecord(
                sequence: UInt64(i), writes: [KeyWrite(key: [1], value: [UInt8](repeating: 7, count: 500), version: 1)])
            let ticket = try log.enqueue(r)
            if ticket.overQueueLimit { overLimit += 1 }
            try await log.waitDurable(ticket)
            // After a wait forced by back-pressure, the record has been written.
            if ticket.overQueueLimit { #expect(log.shared.withLock { $0.writtenLSN } >= ticket.end) }
            records.append(r)
        }
        for i in 41...60 {
            let r = randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 600)
            try await log.append(r)
            records.append(r)
        }
        #expect(overLimit > 0)
        await log.close()
        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        await again.close()
        #expect(recovered.commits == records)
    }

    /// `.unsafeNoSync` acknowledges a record at its enqueue, so acknowledgments must stay a prefix of the log
    /// when the log fails: records A < B < D are queued while the flusher's write is held, B's wait returns, then
    /// the write fails. A (below B) is still acknowledged; D (above every acknowledged record) fails, and so does
    /// every later enqueue. Before, A's wait failed after B's succeeded: the engine, which publishes B's sequence
    /// number and with it A's, showed A's writes and then took them back.
    @Test(.timeLimit(.minutes(1))) func unsafeNoSyncAcknowledgmentsStayAPrefixWhenTheLogFails() async throws {
        let dir = TemporaryDirectory("unsafe-prefix")
        defer { dir.remove() }
        let held = DispatchSemaphore(value: 0)
        let writes = Atomic<Int>(0)
        let failing = FaultHook { point in
            guard point == .walWrite else { return nil }
            writes.add(1, ordering: .sequentiallyConsistent)
            held.wait()  // on the log's flusher thread
            return .fail(errno: EIO)
        }
        let (log, _) = try await WriteAheadLog.open(
            directory: dir.path, options: WALOptions(durability: .unsafeNoSync, faults: failing))
        func record(_ n: UInt64) -> CommitRecord {
            CommitRecord(sequence: n, writes: [KeyWrite(key: [UInt8(n)], value: [1], version: n)])
        }
        let a = try log.enqueue(record(1))
        while writes.load(ordering: .sequentiallyConsistent) == 0 { try await Task.sleep(for: .milliseconds(1)) }
        let b = try log.enqueue(record(2))
        let d = try log.enqueue(record(3))
        try await log.waitDurable(b)  // acknowledged at once: no failure yet
        held.signal()
        while log.failure == nil { try await Task.sleep(for: .milliseconds(1)) }
        held.signal()  // (in case the flusher writes again before it exits)
        try await log.waitDurable(a)  // below B: still acknowledged
        await #expect(throws: StorageError.self) { try await log.waitDurable(d) }
        #expect(throws: StorageError.self) { _ = try log.enqueue(record(4)) }
        await log.close()
    }

    @Test func checkpointWithAnOversizedKeyFailsCleanly() async throws {
        let dir = TemporaryDirectory("bigkey")
        defer { dir.remove() }
        let (log, _) = try await WriteAheadLog.open(directory: dir.path)
        let record = CommitRecord(sequence: 1, writes: [KeyWrite(key: [1], value: [2], version: 1)])
        try await log.append(record)
        let entries = [
            KeyWrite(key: [1], value: [2], version: 1),
            KeyWrite(key: [UInt8](repeating: 0, count: WALFormat.maxKeyBytes + 1), value: [], version: 1)
        ]
        await #expect(throws: StorageError.keyTooLarge(bytes: WALFormat.maxKeyBytes + 1, limit: WALFormat.maxKeyBytes))
        {
            try await log.checkpoint(sequence: 1, entries: AsyncEntries(entries))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file(DataDirectory.checkpointTempName)))
        #expect(!FileManager.default.fileExists(atPath: dir.file(DataDirectory.checkpointName)))
        try await log.checkpoint(sequence: 1, entries: AsyncEntries(entries.prefix(1)))
        await log.close()
        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        await again.close()
        #expect(recovered.checkpointSequence == 1)
        #expect(recovered.checkpointEntries == Array(entries.prefix(1)))
        #expect(recovered.commits.isEmpty)
    }
}
