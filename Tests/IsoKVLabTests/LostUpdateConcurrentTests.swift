import Foundation
import IsoKVLab
import IsoKVTestSupport
import Testing

@Suite("Lab lost-update Concurrent")
struct LostUpdateConcurrentTests {
    static let n = 40

    @Test(
        "strategies that wait, serialize or retry without a tight bound end with exactly N",
        arguments: [
            LostUpdateStrategy.rowLock, .atomicIncrement, .partitionedWriter, .serializableRetry
        ], [0, 200])
    func exact(_ strategy: LostUpdateStrategy, statementLatencyMicroseconds: Int) async throws {
        let parameters = LostUpdateParameters(
            operations: Self.n, seed: 3, statementLatencyMicroseconds: statementLatencyMicroseconds)
        let result = try await LostUpdateExperiment(parameters).run(strategy)
        #expect(result.committed == Self.n, "\(result)")
        #expect(result.gaveUp == 0)
        #expect(result.otherErrors.isEmpty)
        #expect(result.finalCounter == Int64(Self.n))
        #expect(result.reactionRows == Self.n)
        #expect(result.lostUpdates == 0)
        #expect(result.correctness == .correct)
        #expect(result.p99Nanoseconds >= result.p50Nanoseconds && result.p50Nanoseconds > 0)
    }

    @Test(
        "bounded strategies may give up but never lose an update they reported",
        arguments: [
            LostUpdateStrategy.snapshotRetry, .snapshotBudget, .compareAndSet, .compareAndSetBudget
        ])
    func bounded(_ strategy: LostUpdateStrategy) async throws {
        let result = try await LostUpdateExperiment(LostUpdateParameters(operations: Self.n, seed: 5)).run(strategy)
        #expect(result.committed + result.gaveUp == Self.n, "\(result)")
        #expect(result.otherErrors.isEmpty)
        #expect(result.finalCounter == Int64(result.committed))
        #expect(result.reactionRows == result.committed)
        #expect(result.correctness == .correct)
    }

    @Test("the broken baseline's correctness column tells the truth about this run")
    func baseline() async throws {
        for (seed, latency) in [(UInt64(1), 0), (2, 0), (3, 200), (4, 200)] {
            let parameters = LostUpdateParameters(
                operations: Self.n, seed: seed, statementLatencyMicroseconds: latency)
            let result = try await LostUpdateExperiment(parameters).run(.readModifyWrite)
            #expect(!result.claimsToPreventLostUpdates)
            #expect(result.committed == Self.n, "read committed never aborts these transactions: \(result)")
            #expect(result.reactionRows == result.committed, "every committed reaction row is there")
            #expect(result.lostUpdates == result.committed - Int(result.finalCounter))
            let lost = result.finalCounter != Int64(result.committed)
            #expect(result.correctness == (lost ? .brokenAsExpected : .unprotectedNoLossThisRun))
        }
    }

    @Test("the correctness judgement")
    func judgement() {
        #expect(LostUpdateResult.judge(claims: true, committed: 10, counter: 10, rows: 10) == .correct)
        #expect(LostUpdateResult.judge(claims: true, committed: 10, counter: 9, rows: 10) == .fail)
        #expect(LostUpdateResult.judge(claims: true, committed: 10, counter: 10, rows: 11) == .fail)
        #expect(LostUpdateResult.judge(claims: false, committed: 10, counter: 7, rows: 10) == .brokenAsExpected)
        #expect(
            LostUpdateResult.judge(claims: false, committed: 10, counter: 10, rows: 10) == .unprotectedNoLossThisRun)
    }

    @Test("isokv lab lost-update --format json decodes, one result per strategy")
    func commandJSON() async throws {
        let run = try await runOffThePool(["lab", "lost-update", "--n", "20", "--seed", "9", "--format", "json"])
        #expect(run.status == 0, "\(run.stderr)")
        let envelope = try JSONDecoder().decode(Envelope<LostUpdateResult>.self, from: Data(run.stdout.utf8))
        #expect(envelope.title == "isokv lab lost-update")
        #expect(envelope.parameters["n"] == "20")
        #expect(envelope.results.map(\.strategy) == LostUpdateStrategy.allCases)
        #expect(envelope.results.allSatisfy { $0.correctness != .fail })
        #expect(envelope.results.first { $0.strategy == .rowLock }?.seedPublished?.milliseconds == 424)
    }

    @Test("isokv lab anomalies --format json decodes and exits 0")
    func anomaliesJSON() async throws {
        let run = try await runOffThePool(["lab", "anomalies", "--format", "json"])
        #expect(run.status == 0, "\(run.stderr)")
        let envelope = try JSONDecoder().decode(Envelope<AnomalyMatrix>.self, from: Data(run.stdout.utf8))
        #expect(envelope.results.count == 1)
        #expect(envelope.results.first?.mismatches.isEmpty == true)
    }
}

struct Envelope<Result: Decodable>: Decodable {
    var title: String
    var parameters: [String: String]
    var results: [Result]
}

/// Runs the executable on a thread of its own: it blocks on pipes and `waitpid`.
func runOffThePool(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try IsokvExecutable.run(arguments) }) }.start()
    }
}
