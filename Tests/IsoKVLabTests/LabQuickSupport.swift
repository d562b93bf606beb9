import IsoKVConformance
import IsoKVCore
import IsoKVLab
import Testing

/// The `--quick` runs of each experiment with their correctness columns asserted, on any backend: what the test
/// command runs on the embedded engine, through the in-process HTTP server and on PostgreSQL.
enum LabQuickChecks {
    /// lost-update: the strategies that wait, serialize, partition or retry without a tight bound end with exactly
    /// N; the bounded ones never lose an update they reported; nothing fails with an unexpected error.
    static func lostUpdate(on backend: some LabBackend, seed: UInt64) async throws {
        let n = 20
        let results = try await LostUpdateExperiment(LostUpdateParameters(operations: n, seed: seed))
            .run(LostUpdateStrategy.allCases, on: backend)
        #expect(results.count == LostUpdateStrategy.allCases.count)
        for r in results {
            #expect(r.backend == backend.name)
            #expect(r.otherErrors.isEmpty, "\(r.strategy) on \(backend.name): \(r.otherErrors)")
            #expect(r.committed + r.gaveUp == n, "\(r)")
            #expect(r.reactionRows == r.committed || !r.claimsToPreventLostUpdates, "\(r)")
            switch r.strategy {
            case .rowLock, .atomicIncrement, .partitionedWriter, .serializableRetry:
                #expect(r.committed == n, "\(r.strategy) on \(backend.name): \(r)")
                #expect(r.finalCounter == Int64(n) && r.reactionRows == n, "\(r)")
                #expect(r.correctness == .correct, "\(r)")
            case .snapshotRetry, .compareAndSet, .snapshotBudget, .compareAndSetBudget:
                #expect(r.correctness == .correct, "\(r)")
            case .readModifyWrite:
                #expect(r.correctness != .fail)
                #expect(r.lostUpdates == r.committed - Int(r.finalCounter))
            }
        }
    }

    /// isolation: snapshot and serializable keep the invariant; every operation is accounted for; the
    /// correctness column says what the end state shows at the weaker levels.
    static func isolation(on backend: some LabBackend, seed: UInt64) async throws {
        let p = IsolationParameters.quick(seed: seed)
        let results = try await IsolationExperiment(p).run(on: backend)
        #expect(results.count == IsolationWorkload.allCases.count * p.levels.count)
        for r in results {
            #expect(r.otherErrors.isEmpty, "\(r)")
            #expect(r.committed + r.gaveUp == p.operations, "\(r)")
            #expect(r.p99Nanoseconds >= r.p50Nanoseconds && r.p50Nanoseconds > 0, "\(r)")
            #expect(r.abortRate >= 0 && r.abortRate < 1)
            if r.level.hasTransactionSnapshot {
                #expect(r.invariantHeld, "\(r.workload) at \(r.level) on \(backend.name): \(r)")
                #expect(r.correctness == .correct)
            } else {
                #expect(r.correctness == (r.invariantHeld ? .unprotectedNoLossThisRun : .brokenAsExpected))
                #expect(r.found <= r.expected, "a lost update loses, it never adds: \(r)")
            }
        }
    }

    /// queue: every claim mode processes every job exactly once, also when a consumer dies holding a claim (the
    /// job is then finished by another consumer).
    static func queue(on backend: some LabBackend, seed: UInt64) async throws {
        let p = QueueParameters.quick(seed: seed)
        let results = try await QueueExperiment(p).run(on: backend)
        #expect(results.count == QueueClaim.allCases.count * 2)
        for r in results {
            #expect(r.exactlyOnce, "\(r.claim) died=\(r.consumerDied) on \(backend.name): \(r)")
            #expect(r.processedOnce == p.jobs && r.lost == 0 && r.duplicated == 0 && r.leftInQueue == 0, "\(r)")
            #expect(r.diedJobRecovered == (r.consumerDied ? true : nil), "\(r)")
            #expect(r.jobsPerSecond > 0)
        }
    }

    /// write-skew: serializable and explicit locks never break the invariant; the column tells the truth for the
    /// others.
    static func writeSkew(on backend: some LabBackend, seed: UInt64) async throws {
        let p = WriteSkewParameters.quick(seed: seed)
        let results = try await WriteSkewExperiment(p).run(on: backend)
        #expect(results.count == WriteSkewScenario.allCases.count * WriteSkewMode.all.count)
        for r in results {
            if r.claimsToPrevent {
                #expect(r.broken == 0, "\(r.scenario) \(r.mode) on \(backend.name): \(r)")
                #expect(r.correctness == .correct)
            } else {
                #expect(r.correctness == (r.broken == 0 ? .unprotectedNoLossThisRun : .brokenAsExpected))
            }
        }
    }

    /// contention: every cell's end state is right; the strategies that wait or serialize commit every operation;
    /// the surface's grids match its cells.
    static func contention(on backend: some LabBackend, seed: UInt64) async throws {
        let p = ContentionParameters.quick(seed: seed)
        let surfaces = try await ContentionExperiment(p).run(on: backend)
        #expect(surfaces.count == p.strategies.count)
        for s in surfaces {
            #expect(s.cells.count == p.clients.count * p.thetas.count)
            #expect(s.opsPerSecond.count == p.clients.count && s.opsPerSecond.allSatisfy { $0.count == p.thetas.count })
            for (i, c) in p.clients.enumerated() {
                for (j, t) in p.thetas.enumerated() {
                    let cell = s.cells[i * p.thetas.count + j]
                    #expect(cell.clients == c && cell.theta == t && s.opsPerSecond[i][j] == cell.opsPerSecond)
                    #expect(cell.correct, "\(cell)")
                    #expect(cell.otherErrors.isEmpty, "\(cell)")
                    #expect(cell.committed + cell.gaveUp == cell.operations, "\(cell)")
                    if [.rowLock, .atomicIncrement, .partitionedWriter].contains(s.strategy) {
                        #expect(cell.committed == cell.operations && cell.gaveUp == 0, "\(cell)")
                    }
                }
            }
        }
    }
}
