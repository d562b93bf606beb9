import IsoKVSync
import Dispatch
import IsoKVHistory
import Testing
import IsoKVTestSupport

/// Many threads and tasks record into one `HistoryRecorder` at once (run under ThreadSanitizer by scripts/test).
@Suite struct ConcurrentHistoryRecorderTests {
    /// Threads run transactions one at a time on a shared model store (each transaction entirely inside the store's
    /// lock, so the execution is serial) and record them concurrently; nothing may be lost and the checker must
    /// find the history serializable.
    @Test func threadsRecordASerialExecution() throws {
        let threads = 8, perThread = 250
        let store = Locked(ModelStore(kind: .snapshot, keyCount: 8))
        let recorder = HistoryRecorder()
        let failures = Locked([String]())
        let workload = Workload()
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var rng = SplitMix64(seed: UInt64(thread) + 100)
            for _ in 0..<perThread {
                let steps = workload.program(rng: &rng)
                let record = store.withLock { s in
                    Result { () throws -> TransactionRecord in
                        let id = recorder.makeID()
                        s.begin(id)
                        for step in steps {
                            switch step {
                            case .read(let k): try s.read(id, s.keys[k], rng: &rng)
                            case .write(let k): try s.write(id, s.keys[k], .put)
                            case .delete(let k): try s.write(id, s.keys[k], .delete)
                            case .scan(let from, let count):
                                let to = from + count
                                try s.scan(
                                    id, KeyRange(from: s.keys[from], to: to < s.keys.count ? s.keys[to] : nil),
                                    rng: &rng)
                            }
                        }
                        return Bool.random(using: &rng) && Bool.random(using: &rng)
                            ? try s.rollback(id) : try s.commit(id)
                    }
                }
                do { try recorder.record(record.get()) } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let history = recorder.history
        #expect(history.transactions.count == threads * perThread)
        #expect(Set(history.transactions.map(\.id)).count == threads * perThread)
        let result = try HistoryChecker.check(history, at: .serializable)
        #expect(result.isValid, "\(result)")
        #expect(result.allowed.isEmpty)
        #expect(result.stats.committed + result.stats.aborted == threads * perThread)
    }

    /// Tasks record their transactions, then fill installed versions afterwards with `update`, concurrently.
    @Test func tasksRecordThenFillInstalledVersions() async throws {
        let recorder = HistoryRecorder()
        // Every task writes its own key once; versions are filled after recording.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<16 {
                group.addTask {
                    for i in 0..<50 {
                        var t = TransactionRecord(id: recorder.makeID(), level: .readCommitted)
                        t.write(HistoryKey("task\(task)/\(i)"))
                        t.commit()
                        try recorder.record(t)
                        try recorder.update(t.id) { (r: inout TransactionRecord) throws(HistoryError) in
                            try r.setInstalled(HistoryKey("task\(task)/\(i)"), version: 1)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let history = recorder.history
        #expect(history.transactions.count == 800)
        for t in history.transactions {
            guard case .write(_, _, let installed) = t.operations[0] else { Issue.record("not a write"); continue }
            #expect(installed == 1)
        }
        #expect(try HistoryChecker.check(history, at: .serializable).isValid)
    }

    @Test func recorderRejectsBadRecords() throws {
        let recorder = HistoryRecorder()
        #expect(throws: HistoryError.noOutcome(5)) { try recorder.record(TransactionRecord(id: 5, level: .snapshot)) }
        var t = TransactionRecord(id: 5, level: .snapshot)
        t.commit()
        try recorder.record(t)
        #expect(throws: HistoryError.duplicateTransaction(5)) { try recorder.record(t) }
        #expect(recorder.makeID() == 6)  // ids handed out stay above recorded ones
        #expect(throws: HistoryError.unknownTransaction(9)) { try recorder.update(9) { _ in } }
        #expect(throws: HistoryError.noWrite(txn: 5, key: "x")) {
            try recorder.update(5) { (r: inout TransactionRecord) throws(HistoryError) in
                try r.setInstalled("x", version: 1)
            }
        }
        try recorder.update(5) { $0.id = 77 }  // the id cannot be edited
        #expect(recorder.history.transactions.map(\.id) == [5])
    }
}
