import IsoKVHistory
import Testing

/// Random workloads on the in-test model store: executions known to be correct must pass, and deliberately broken
/// stores must be caught (a checker that cannot fail proves nothing).
@Suite struct RandomizedHistoryTests {
    static let seeds: [UInt64] = Array(1...25)

    /// Counts of phenomena over all seeds.
    func tally(_ kind: ModelStore.Kind, _ workload: Workload, check: (HistoryAnalysis) -> Void = { _ in })
        throws -> [Phenomenon: Int]
    {
        var found: [Phenomenon: Int] = [:]
        for seed in Self.seeds {
            let analysis = try HistoryChecker().analyze(try workload.run(kind, seed: seed))
            for a in analysis.anomalies { found[a.phenomenon, default: 0] += 1 }
            check(analysis)
        }
        print(
            "model store \(kind): findings over \(Self.seeds.count) runs: \(found.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
        )
        return found
    }

    @Test func serialExecutionsHaveNoFindings() throws {
        var w = Workload()
        w.concurrency = 1  // one transaction at a time: serial, hence serializable
        var predicateEdges = 0
        let found = try tally(.snapshot, w) { a in
            #expect(a.anomalies.isEmpty, "\(a.result(at: .serializable))")
            #expect(a.stats.ambiguousAbsentReads == 0)
            predicateEdges += a.stats.edges["rw-predicate", default: 0]
        }
        #expect(found.isEmpty)
        #expect(predicateEdges > 0)  // the scans did produce predicate dependencies to check
    }

    @Test func twoPhaseLockingInterleavingsHaveNoFindings() throws {
        // Interleaved (4 at a time) but serializable by strict 2PL with range locks: nothing may be reported,
        // predicate dependencies included.
        var predicateEdges = 0, aborted = 0
        let found = try tally(.twoPhaseLocking, Workload()) { a in
            #expect(a.anomalies.isEmpty, "\(a.result(at: .serializable))")
            predicateEdges += a.stats.edges["rw-predicate", default: 0]
            aborted += a.stats.aborted
        }
        #expect(found.isEmpty)
        #expect(predicateEdges > 0 && aborted > 0)
    }

    @Test func snapshotStorePassesAtSnapshotAndShowsWriteSkew() throws {
        var failingAtSerializable = 0
        let found = try tally(.snapshot, Workload()) { a in
            #expect(a.result(at: .snapshot).isValid, "\(a.result(at: .snapshot))")
            if !a.result(at: .serializable).isValid { failingAtSerializable += 1 }
        }
        // Snapshot isolation allows write skew (G2-item) and phantoms (G2); the checker must see some.
        #expect(found[.g2Item, default: 0] + found[.g2, default: 0] > 0, "\(found)")
        #expect(failingAtSerializable > 0)
        #expect(found[.gSingle] == nil && found[.lostUpdate] == nil)
    }

    @Test func blindReadCommittedStoreIsCaughtAtSnapshot() throws {
        var failingAtSnapshot = 0
        let found = try tally(.readCommittedBlind, Workload()) { a in
            #expect(a.result(at: .readCommitted).isValid, "\(a.result(at: .readCommitted))")
            if !a.result(at: .snapshot).isValid { failingAtSnapshot += 1 }
        }
        #expect(found[.lostUpdate, default: 0] > 0, "\(found)")
        #expect(found[.gSingle, default: 0] > 0, "\(found)")
        #expect(failingAtSnapshot > Self.seeds.count / 2)
    }

    @Test func readUncommittedStoreIsCaughtAtReadCommitted() throws {
        var w = Workload()
        w.rollbackRate = 0.3
        w.deletes = false
        let found = try tally(.readUncommitted, w) { a in
            #expect(a.result(at: .readUncommitted).isValid, "\(a.result(at: .readUncommitted))")
        }
        #expect(found[.g1a, default: 0] > 0, "\(found)")
        #expect(found[.g1b, default: 0] > 0, "\(found)")
    }

    @Test func storeWithoutWriteLocksIsCaughtAtReadUncommitted() throws {
        var w = Workload()
        w.rollbackRate = 0
        w.scans = false
        w.deletes = false
        var failing = 0
        let found = try tally(.noWriteLocks, w) { a in
            if !a.result(at: .readUncommitted).isValid { failing += 1 }
        }
        #expect(found[.g0, default: 0] > 0, "\(found)")
        #expect(failing > 0)
    }
}
