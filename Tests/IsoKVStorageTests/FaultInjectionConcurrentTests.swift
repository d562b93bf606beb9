import IsoKVSync
import Foundation
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

/// A failpoint that fires at `point` once armed, `times` times (or forever), with `action`.
final class Failpoint: Sendable {
    struct State { var armed = false; var remaining = Int.max; var fired = 0 }
    let point: FaultPoint
    let action: FaultAction
    let state = Locked(State())

    init(_ point: FaultPoint, _ action: FaultAction) {
        self.point = point
        self.action = action
    }

    func arm(times: Int = .max) {
        state.withLock {
            $0.armed = true; $0.remaining = times
        }
    }
    var fired: Int { state.withLock { $0.fired } }

    var hook: FaultHook {
        FaultHook { [self] p in
            guard p == point else { return nil }
            return state.withLock { s -> FaultAction? in
                guard s.armed, s.remaining > 0 else { return nil }
                s.remaining -= 1
                s.fired += 1
                return action
            }
        }
    }
}

/// "Concurrent": every test runs the log's flusher thread beside the test task, so scripts/test runs it under TSan.
@Suite struct FaultInjectionConcurrentTests {
    /// Appends `good` records, arms the failpoint, checks the next append and every later one fail with
    /// `logFailed`, then reopens without faults and returns what recovery found.
    func runFailure(
        _ point: FaultPoint, _ action: FaultAction, options: WALOptions = WALOptions(),
        good: Int = 5
    ) async throws -> (acked: [CommitRecord], failed: [CommitRecord], recovered: RecoveredState) {
        let dir = TemporaryDirectory("fault")
        defer { dir.remove() }
        let failpoint = Failpoint(point, action)
        var opts = options
        opts.faults = failpoint.hook
        var rng = SplitMix64(seed: 20)
        let (log, _) = try await WriteAheadLog.open(directory: dir.path, options: opts)
        var acked: [CommitRecord] = []
        for i in 1...good {
            let r = randomRecord(sequence: UInt64(i), rng: &rng, maxValue: 300)
            try await log.append(r)
            acked.append(r)
        }
        failpoint.arm()
        var failed: [CommitRecord] = []
        var sequence = UInt64(good)
        // Keep appending until the armed point is reached (rotation needs a full segment first).
        while failed.isEmpty && sequence < 10_000 {
            sequence += 1
            let r = randomRecord(sequence: sequence, rng: &rng, maxValue: 300)
            do {
                try await log.append(r)
                acked.append(r)
            } catch let error as StorageError {
                guard case .logFailed(let cause) = error else { Issue.record("unexpected \(error)"); break }
                #expect(!cause.isEmpty)
                failed.append(r)
            }
        }
        #expect(failpoint.fired >= 1)
        #expect(failed.count == 1)
        // Fsyncgate: once failed, never accept another commit, even though the fault is gone.
        let later = randomRecord(sequence: sequence + 1, rng: &rng)
        await #expect(throws: StorageError.self) { try await log.append(later) }
        #expect(throws: StorageError.self) { _ = try log.enqueue(later) }
        #expect(log.failure != nil)
        await log.close()
        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        await again.close()
        // Every acknowledged record is back; the failed one may or may not be (never partly); nothing after it.
        #expect(Array(recovered.commits.prefix(acked.count)) == acked)
        #expect(recovered.commits.count <= acked.count + 1)
        if recovered.commits.count == acked.count + 1 { #expect(recovered.commits.last == failed.first) }
        #expect(!recovered.commits.contains(later))
        return (acked, failed, recovered)
    }

    @Test func failedFsyncStopsTheLog() async throws {
        let run = try await runFailure(.walSync, .fail(errno: EIO))
        #expect(run.acked.count == 5)
    }

    @Test func enospcOnWriteStopsTheLog() async throws {
        let run = try await runFailure(.walWrite, .fail(errno: ENOSPC))
        #expect(run.recovered.commits == run.acked)
    }

    @Test func shortWriteLeavesATornTailThatRecoveryCuts() async throws {
        let run = try await runFailure(.walWrite, .partialWrite(bytes: 21, errno: ENOSPC))
        #expect(run.recovered.commits == run.acked)
        #expect(run.recovered.truncatedTail?.droppedBytes == 21)
    }

    @Test func tornWriteAtEveryLengthOfARecord() async throws {
        // A crash can stop a write anywhere: every prefix of the record is cut off at reopen.
        for cut in [0, 1, 15, 16, 17, 40, 100] {
            let run = try await runFailure(.walWrite, .partialWrite(bytes: cut, errno: EIO), good: 2)
            #expect(run.recovered.commits == run.acked)
        }
    }

    @Test func failedRotationStopsTheLog() async throws {
        let run = try await runFailure(.segmentRotate, .fail(errno: ENOSPC), options: WALOptions(segmentBytes: 4096))
        #expect(run.recovered.commits == run.acked)
        #expect(run.acked.count > 5)
    }

    @Test func failedDirectorySyncAtRotationStopsTheLog() async throws {
        let run = try await runFailure(.directorySync, .fail(errno: EIO), options: WALOptions(segmentBytes: 4096))
        #expect(run.acked.count > 5)
    }

    @Test func failedCheckpointKeepsThePreviousOneAndTheLogRunning() async throws {
        for (point, action) in [
            (FaultPoint.checkpointRename, FaultAction.fail(errno: EIO)),
            (.checkpointSync, .fail(errno: EIO)),
            (.checkpointWrite, .partialWrite(bytes: 10, errno: ENOSPC))
        ] {
            let dir = TemporaryDirectory("ckfault")
            defer { dir.remove() }
            let failpoint = Failpoint(point, action)
            let kv = try await DurableKeyValueLog.open(
                directory: dir.path,
                options: WALOptions(segmentBytes: 4096, faults: failpoint.hook))
            for i in 0..<50 { try await kv.commit { _ in [(bytes("k\(i % 7)"), bytes("first \(i)"))] } }
            try await kv.checkpoint()
            for i in 0..<50 { try await kv.commit { _ in [(bytes("k\(i % 9)"), bytes("second \(i)"))] } }
            failpoint.arm(times: 1)
            await #expect(throws: StorageError.self) { try await kv.checkpoint() }
            #expect(failpoint.fired == 1)
            #expect(!FileManager.default.fileExists(atPath: dir.file(DataDirectory.checkpointTempName)))
            // The log is not failed by a checkpoint error.
            try await kv.commit { _ in [(bytes("after"), bytes("yes"))] }
            let expected = kv.snapshot()
            await kv.close()
            let (log, recovered) = try await WriteAheadLog.open(directory: dir.path)
            #expect(recovered.checkpointSequence == 50)
            await log.close()
            let again = try await DurableKeyValueLog.open(directory: dir.path)
            #expect(again.snapshot().map == expected.map)
            #expect(again.snapshot().sequence == expected.sequence)
            // And a checkpoint works again.
            try await again.checkpoint()
            await again.close()
        }
    }
}
