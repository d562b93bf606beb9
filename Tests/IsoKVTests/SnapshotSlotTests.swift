@_spi(Testing) @testable import IsoKV
import IsoKVTestSupport
import Testing

/// The lock-free snapshot registrations of `.snapshot` transactions (`SnapshotSlots` in Oracle.swift) and their
/// fallback to the locked stripes when every slot is taken.
@Suite("Snapshot slots (Oracle)")
struct SnapshotSlotTests {
    @Test func claimReleaseAndOldest() {
        let slots = SnapshotSlots()
        #expect(slots.oldest() == nil)
        let a = slots.claim(10, hint: 3)
        let b = slots.claim(7, hint: 3)
        #expect(a == 3 && b == 4, "the search starts at the hint and takes the next free slot")
        #expect(slots.oldest() == 7)
        slots.release(b!)
        #expect(slots.oldest() == 10)
        let zero = slots.claim(0, hint: 100)
        #expect(slots.oldest() == 0, "snapshot 0 is a registration, not a free slot")
        slots.release(a!)
        slots.release(zero!)
        #expect(slots.oldest() == nil && slots.occupied().isEmpty)
        var taken: [Int] = []
        while let i = slots.claim(5, hint: 0) { taken.append(i) }
        #expect(taken.count == SnapshotSlots.count)
        for i in taken { slots.release(i) }
    }

    /// `olderRegistrationLive(than:)`: after a release, whether the slot `horizon()` last found holding the smallest
    /// bound still holds a bound below the released snapshot (then the ender leaves the GC sweep to that
    /// registration's end). A stale hint — its slot free, or holding a bound no older — says no.
    @Test func anOlderLiveRegistrationIsFoundThroughTheHint() {
        let oracle = Oracle()
        oracle.published.store(5, ordering: .sequentiallyConsistent)
        let (old, oldSlot) = oracle.registerSnapshotFast(hint: 0, stripe: 0)
        oracle.published.store(9, ordering: .sequentiallyConsistent)
        let (young, youngSlot) = oracle.registerSnapshotFast(hint: 1, stripe: 0)
        #expect(old == 5 && young == 9)
        #expect(!oracle.olderRegistrationLive(than: young), "no horizon computed yet: no hint")
        #expect(oracle.horizon() == 5)
        _ = oracle.unregisterSnapshotFast(young, slot: youngSlot, stripe: 0)
        #expect(oracle.olderRegistrationLive(than: young), "the old registration is live")
        #expect(!oracle.olderRegistrationLive(than: old), "nothing is older than the oldest")
        _ = oracle.unregisterSnapshotFast(old, slot: oldSlot, stripe: 0)
        #expect(!oracle.olderRegistrationLive(than: young), "the hinted slot is free")
        let (again, againSlot) = oracle.registerSnapshotFast(hint: oldSlot, stripe: 0)
        #expect(againSlot == oldSlot && again == 9)
        #expect(!oracle.olderRegistrationLive(than: 9), "the hinted slot's bound is not older")
        #expect(oracle.olderRegistrationLive(than: 10))
        _ = oracle.unregisterSnapshotFast(again, slot: againSlot, stripe: 0)
        #expect(oracle.slots.occupied().isEmpty)
    }

    /// More open snapshot transactions than slots: the rest register in the stripes; the statistics, the horizon
    /// and the checker count both, and everything is unregistered at the end.
    @Test func moreTransactionsThanSlotsFallBackToStripes() async throws {
        let db = makeDatabase()
        try await db.put("k", "0")
        let n = SnapshotSlots.count + 8
        var open: [Transaction] = []
        for i in 0..<n {
            let tx = try await db.begin(.snapshot)
            #expect(try await tx.get("k") == Bytes("\(max(0, i - 1))"), "the newest value when it began")
            open.append(tx)
            try await db.put("k", Bytes("\(i)"))
        }
        #expect(db.statistics().liveSnapshots == n)
        #expect(open.filter { $0.snapshotSlot < 0 }.count == 8, "8 registrations fell back to the stripes")
        expectConsistent(db, .concurrent)
        // The oldest transaction still reads its version: GC kept it.
        #expect(try await open[0].get("k") == "0")
        for tx in open { try await tx.commit() }
        #expect(db.statistics().liveSnapshots == 0)
        #expect(db.statistics().versions == 1, "every old version collected once the snapshots ended")
        expectConsistent(db)
    }

    /// A snapshot registered in a stripe (statement snapshots, backups, or every slot taken) holds the horizon back
    /// even though the horizon looks at the stripes only while their registration count is not zero; the count
    /// returns to zero, and the horizon to `published`, when it ends. A serializable transaction registers in a slot.
    @Test func stripeRegistrationsHoldTheHorizonAndAreCounted() async throws {
        let db = makeDatabase()
        try await db.put("k", "0")
        #expect(db.oracle.stripeRegistrations.load(ordering: .relaxed) == 0)
        let s = db.oracle.registerSnapshot(stripe: 3)
        #expect(db.oracle.stripeRegistrations.load(ordering: .relaxed) == 1)
        for i in 1...5 { try await db.put("k", Bytes("\(i)")) }
        #expect(db.oracle.horizon() == s, "the stripe's snapshot is the oldest")
        #expect(db.statistics().versions == 6, "GC keeps the version the stripe's snapshot sees, and the newer ones")
        #expect(!db.oracle.unregisterSnapshot(s + 1000, stripe: 3), "not registered: nothing to remove")
        #expect(db.oracle.stripeRegistrations.load(ordering: .relaxed) == 1)
        #expect(db.oracle.unregisterSnapshot(s, stripe: 3))
        #expect(db.oracle.stripeRegistrations.load(ordering: .relaxed) == 0)
        #expect(db.oracle.horizon() == db.oracle.latest())

        let tx = try await db.begin(.serializable)
        _ = try await tx.get("k")
        #expect(tx.snapshotSlot >= 0 && db.oracle.stripeRegistrations.load(ordering: .relaxed) == 0)
        try await tx.commit()
        #expect(db.oracle.slots.occupied().isEmpty)
    }

    /// A sweep asked for while another runs is not lost. The first sweep uses a horizon from while a reader still
    /// held old versions; during it the reader's registration ends and another sweep is asked for. That request
    /// must make the running sweeper sweep again at a fresh horizon (dropping it left the old versions until the
    /// next write, even with every transaction ended).
    @Test func aSweepAskedForDuringASweepRunsAfterIt() async throws {
        let db = makeDatabase()
        try await db.put("k", "0")
        let reader = try await db.begin(.snapshot)
        #expect(try await reader.get("k") == "0")
        try await db.put("k", "1")
        try await db.put("k", "2")
        #expect(db.statistics().versions == 3, "the reader's version and the two newer ones")
        let stale = db.oracle.horizon()
        let (snapshot, slot, stripe) = (reader.snapshot!, reader.snapshotSlot, reader.snapshotStripe)
        #expect(slot >= 0)
        var asked = false
        db.gc.sweep(db, horizon: stale) {
            // The reader's registration ends (as its commit would release it), and its end asks for a sweep.
            _ = db.oracle.unregisterSnapshotFast(snapshot, slot: slot, stripe: stripe)
            db.gc.sweep(db)
            asked = true
        }
        #expect(asked)
        #expect(db.statistics().versions == 1, "collected by the sweep asked for during the first one")
        reader.snapshotSlot = -1  // already released above
        try await reader.commit()
        #expect(db.oracle.slots.occupied().isEmpty)
        expectConsistent(db)
    }

    /// A snapshot registered in a slot that outlives its transaction is found by the checker (the count of
    /// registrations against open transactions includes the slots).
    @Test func checkerCountsSlots() async throws {
        let db = makeDatabase()
        let slot = db.oracle.slots.claim(db.oracle.latest(), hint: 0)
        #expect(slot != nil)
        let report = db.check(.quiescent)
        #expect(report.findings.contains { $0.kind == .snapshotWithoutTransaction }, "\(report)")
        db.oracle.slots.release(slot!)
        expectConsistent(db)
    }

    /// Readers take and drop slot snapshots while writers update and GC collects: every reader sees the same
    /// value twice in its snapshot (a version it needs is never collected) and never a value older than one
    /// committed before it began.
    @Test func readersKeepTheirVersionsUnderConcurrentCollection() async throws {
        let db = makeDatabase()
        let keys = (0..<8).map { Bytes("k\($0)") }
        try await seed(db, keys.map { ($0, Bytes(Int64(0))) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<2 {
                group.addTask {
                    for i in 1...2_000 {
                        let k = keys[(i * 3 + w) % keys.count]
                        _ = try await db.increment(k, by: 1)
                    }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    for i in 0..<3_000 {
                        let k = keys[i % keys.count]
                        let floor = try await db.get(k)?.value.int64 ?? 0
                        try await db.transaction(.snapshot, readOnly: true) { tx in
                            let first = try await tx.get(k)?.int64
                            for other in keys where other != k { _ = try await tx.get(other) }
                            let second = try await tx.get(k)?.int64
                            #expect(
                                first != nil && first == second,
                                "\(k): \(String(describing: first)) then \(String(describing: second))")
                            #expect((first ?? 0) >= floor)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(db.statistics().liveSnapshots == 0)
        #expect(db.statistics().versions == keys.count)
        expectConsistent(db)
    }
}
