import Foundation
@_spi(Testing) @testable import IsoKV
import IsoKVTestSupport
import Testing

/// A `Transaction` keeps its database alive through the beginning thread's owner (`Database.owners`), an instance
/// that shares every part of the handle the caller holds: the handle ends when its caller drops it, the
/// transactions begun on it go on to their end, and the shared parts are freed after the last of them.
@Suite("Transaction owners (Database)")
struct TransactionOwnerConcurrentTests {
    /// A transaction holds an owner, not the handle: same parts, one owner per thread stripe, none of its own.
    @Test func aTransactionHoldsAnOwnerSharingTheHandlesParts() async throws {
        let db = Database.inMemory()
        let a = try await db.begin(.snapshot)
        let b = try await db.begin(.readCommitted, readOnly: true)
        #expect(a.db !== db, "a transaction must not hold the handle (every begin would write its reference count)")
        #expect(a.db.oracle === db.oracle && a.db.directory as AnyObject === db.directory as AnyObject)
        #expect(a.db.index === db.index && a.db.gc === db.gc && a.db.ssi === db.ssi && a.db.live === db.live)
        #expect(a.db.lockManager === db.lockManager && a.db.failureCounts === db.failureCounts)
        #expect(a.db.transactionOwner(thread: 0) === a.db, "an owner has no owners of its own")
        // Both began on this task; whether on one thread is up to the executor, but each holds one of the owners.
        #expect([a.db, b.db].allSatisfy { owner in (0..<Database.ownerCount).contains { db.owner(at: $0) === owner } })
        try await a.put("k", "v")
        try await a.commit()
        #expect(try await b.get("k") == "v", "a write through one owner is read through another")
        try await b.commit()
    }

    /// The handle's caller drops it with transactions open: the handle ends at once, the transactions still read,
    /// write and commit, and everything is freed once they are gone.
    @Test func transactionsOutliveTheirHandle() async throws {
        weak var handle: Database?
        weak var oracle: Oracle?
        var writer: Transaction?
        var reader: Transaction?
        do {
            let db = Database.inMemory()
            try await db.put("before", "1")
            handle = db
            oracle = db.oracle
            writer = try await db.begin(.snapshot)
            reader = try await db.begin(.readCommitted, readOnly: true)
        }
        #expect(handle == nil, "the handle must end when its caller drops it, open transactions or not")
        #expect(oracle != nil)
        #expect(try await writer!.get("before") == "1")
        try await writer!.put("after", "2")
        try await writer!.commit()
        #expect(try await reader!.get("after") == "2")
        try await reader!.commit()
        writer = nil
        #expect(oracle != nil, "the reader's owner still holds the parts")
        reader = nil
        #expect(oracle == nil, "the parts must be freed with the last transaction")
    }

    /// A durable commit made after the handle was dropped is in the log: it survives a reopen.
    @Test func aDurableCommitAfterTheHandleEndedSurvivesReopen() async throws {
        let dir = TemporaryDirectory("owner-durable")
        defer { dir.remove() }
        weak var handle: Database?
        var tx: Transaction?
        do {
            let db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
            handle = db
            tx = try await db.begin(.snapshot)
        }
        #expect(handle == nil)
        try await tx!.put("late", "commit")
        try await tx!.commit()
        await tx!.db.close()
        tx = nil
        let reopened = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        #expect(try await reopened.get("late")?.value == "commit")
        await reopened.close()
    }

    /// Tasks on several threads begin and commit transactions (through every owner they reach), then the caller
    /// drops its handle: no increment is lost, and the parts are freed once the handle and the tasks are gone.
    @Test func concurrentTransactionsThroughTheOwners() async throws {
        let tasks = 4
        let perTask = 300
        weak var oracle: Oracle?
        let total: Int64 = try await {
            let db = Database.inMemory()
            oracle = db.oracle
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<tasks {
                    group.addTask {
                        for i in 0..<perTask {
                            // A row lock, not first-updater-wins: the test is about owners, not retries.
                            try await db.transaction(.readCommitted) { tx in
                                let n = try await tx.lock("counter", .forUpdate)?.int64 ?? 0
                                try await tx.put("counter", Bytes(n + 1))
                                try await tx.put(Bytes("task/\(t)/\(i % 7)"), Bytes(Int64(i)))
                            }
                            let reader = try await db.begin(.snapshot, readOnly: true)
                            _ = try await reader.get("counter")
                            try await reader.commit()
                            try await db.increment("increments")  // a single-key write's own transaction
                        }
                    }
                }
                try await group.waitForAll()
            }
            let report = db.check(.quiescent)
            #expect(report.isConsistent, "\(report)")
            let increments = try await db.get("increments")?.value.int64 ?? -1
            #expect(increments == Int64(tasks * perTask))
            return try await db.get("counter")?.value.int64 ?? -1
        }()
        #expect(total == Int64(tasks * perTask), "every committed increment must be there")
        #expect(oracle == nil, "the parts must be freed once the handle and every transaction are gone")
    }
}
