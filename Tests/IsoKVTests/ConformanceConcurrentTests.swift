import Foundation
@_spi(Testing) import IsoKV
import IsoKVConformance
import IsoKVSync
import Testing

/// The conformance library run against the embedded engine, and against the engine dressed up as other kinds of
/// backend, so that the capability-dependent cells of the expected table are checked against real behaviour.
@Suite("Conformance (Concurrent)", .timeLimit(.minutes(3)))
struct ConformanceConcurrentTests {
    /// PostgreSQL as we expect its backend to declare itself: read uncommitted runs as read committed, the deadlock
    /// victim is the first waiter whose `deadlock_timeout` fires, any error aborts the transaction.
    static let postgreSQLLike: BackendCapabilities = {
        var c = BackendCapabilities.embeddedEngine
        c.readUncommitted = .readCommitted
        c.deadlockVictim = .firstWaiterToTimeOut
        c.failedStatementAbortsTransaction = true
        return c
    }()

    @Test func embeddedEngineMatchesTheExpectedTable() async {
        let report = await ConformanceRunner(backend: EmbeddedBackend()).runAll()
        #expect(report.rows.count == Replay.allCases.reduce(0) { $0 + $1.levels.count })
        #expect(report.notRun.isEmpty, "the embedded engine has every capability")
        expectConforms(report)
    }

    /// PostgreSQL's read uncommitted, played by the engine running `.readUncommitted` as `.readCommitted`: the
    /// read-uncommitted cells that differ from the embedded engine's must hold too.
    @Test func readUncommittedAsReadCommitted() async {
        var capabilities = BackendCapabilities.embeddedEngine
        capabilities.readUncommitted = .readCommitted
        let backend = LevelMappingBackend(
            name: "read uncommitted as read committed",
            mapping: [.readUncommitted: .readCommitted], capabilities: capabilities)
        let report = await ConformanceRunner(backend: backend).runAll(levels: [.readUncommitted])
        expectConforms(report)
        #expect(report.row(.dirtyRead, at: .readUncommitted)?.actual == .preventedBySnapshot)
    }

    /// Snapshot isolation sold as serializable: write skew and the read-only anomaly occur at `.serializable`.
    @Test func snapshotIsolationAsSerializable() async {
        var capabilities = BackendCapabilities.embeddedEngine
        capabilities.serializable = .snapshotIsolation
        capabilities.deferrableReadOnly = false
        let backend = LevelMappingBackend(
            name: "snapshot isolation as serializable",
            mapping: [.serializable: .snapshot], capabilities: capabilities)
        let report = await ConformanceRunner(backend: backend).runAll(levels: [.serializable])
        expectConforms(report)
        #expect(report.notRun.map(\.replay) == [.readOnlyAnomalyDeferrable])
        #expect(report.row(.writeSkew, at: .serializable)?.actual == .occurred)
    }

    /// A backend that claims read uncommitted is read committed while it really reads dirty: exactly the three
    /// cells that depend on it mismatch, so the suite does catch a wrong claim.
    @Test func aMisstatedCapabilityIsCaught() async {
        var capabilities = BackendCapabilities.embeddedEngine
        capabilities.readUncommitted = .readCommitted
        let backend = LevelMappingBackend(name: "misstated", mapping: [:], capabilities: capabilities)
        let report = await ConformanceRunner(backend: backend).runAll(levels: [.readUncommitted])
        let mismatched = Set(report.mismatches.map(\.replay))
        if mismatched != [.dirtyRead, .abortedRead, .lostUpdateAfterWait] {
            Issue.record(
                "expected exactly dirty-read, aborted-read, lost-update-after-wait to mismatch:\n\(report.matrix())")
        }
        #expect(report.matrix().contains("✗ occurred (expected prevented (snapshot))"))
    }

    /// A replay whose store never lets it go on ends as `unexpected("stalled")` naming its last step, within the
    /// stall timeout, and its waiting transaction is cancelled.
    @Test func aStalledReplayIsReportedNotHung() async throws {
        let runner = ConformanceRunner(backend: BlindBackend(), stallTimeout: .milliseconds(300))
        let outcome = try await runner.run(.dirtyWrite, at: .readCommitted)
        #expect(outcome.verdict == .unexpected("stalled"))
        #expect(outcome.detail.contains("last step: T2 writes x = 2"), "\(outcome.detail)")
    }

    /// When the participant ends first (here: cancelled by the stall guard), the lock-wait observation that lost the
    /// race is cancelled, and the engine drops its observer: nothing of the replay stays registered in the store.
    @Test func anObservationThatLostTheRaceLeavesNoObserver() async throws {
        let backend = BlindBackend()
        let runner = ConformanceRunner(backend: backend, stallTimeout: .milliseconds(300))
        _ = try await runner.run(.dirtyWrite, at: .readCommitted)
        let store = try #require(backend.stores.withLock { $0.last })
        // The participant's end, and so the cancellation, comes after the run has reported the stall.
        let deadline = ContinuousClock.now + .seconds(120)
        while store.lockWaitObserversForTesting > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(store.lockWaitObserversForTesting == 0)
    }

    @Test func aMissingCapabilityIsNotRunAndSaysWhy() async throws {
        var capabilities = BackendCapabilities.embeddedEngine
        capabilities.observableLockWaits = false
        let backend = LevelMappingBackend(name: "no lock-wait hook", mapping: [:], capabilities: capabilities)
        let runner = ConformanceRunner(backend: backend)
        await #expect(throws: ConformanceError.unsupported("deadlock-of-two needs observable lock waits")) {
            try await runner.run(.deadlockOfTwo, at: .readCommitted)
        }
        let report = await runner.runAll([.deadlockOfTwo, .dirtyRead], levels: [.readCommitted])
        #expect(report.notRun.map(\.detail) == ["not run (needs observable lock waits)"])
        expectConforms(report)
    }

    @Test func reportRoundTripsThroughJSON() async throws {
        let report = await ConformanceRunner(backend: EmbeddedBackend()).runAll([.dirtyRead, .noWait, .writeSkew])
        let json = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(ConformanceReport.self, from: json) == report)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""verdict":"prevented-by-error""#) && text.contains(#""code":"55P03""#), "\(text)")
        let notRun = ExpectedOutcome.notRun(reason: "needs savepoints")
        #expect(try JSONDecoder().decode(ExpectedOutcome.self, from: JSONEncoder().encode(notRun)) == notRun)
    }

    // MARK: The expected table and its documentation

    static let designPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/IsoKVConformance/DESIGN.md").path

    /// DESIGN.md prints the expected tables; they must be what `expectedOutcome` gives.
    @Test func designShowsTheExpectedTables() throws {
        let design = try String(contentsOfFile: Self.designPath, encoding: .utf8)
        for capabilities in [BackendCapabilities.embeddedEngine, Self.postgreSQLLike] {
            let table = ConformanceReport.expectedMatrix(for: capabilities)
            if !design.contains(table) { Issue.record("DESIGN.md lacks this table:\n\(table)") }
        }
    }

    /// Every cell that depends on a capability, flipping one capability of the embedded engine at a time; DESIGN.md
    /// lists each of them.
    @Test func designListsEveryCapabilityDependentCell() throws {
        let design = try String(contentsOfFile: Self.designPath, encoding: .utf8)
        let base = BackendCapabilities.embeddedEngine
        var flips: [(String, BackendCapabilities)] = []
        func flip(_ name: String, _ change: (inout BackendCapabilities) -> Void) {
            var c = base
            change(&c)
            flips.append((name, c))
        }
        flip("readUncommitted: .readCommitted") { $0.readUncommitted = .readCommitted }
        flip("serializable: .snapshotIsolation") { $0.serializable = .snapshotIsolation }
        flip("deadlockVictim: .firstWaiterToTimeOut") { $0.deadlockVictim = .firstWaiterToTimeOut }
        flip("observableLockWaits: false") { $0.observableLockWaits = false }
        flip("savepoints: false") { $0.savepoints = false }
        flip("lockTimeout: false") { $0.lockTimeout = false }
        flip("deferrableReadOnly: false") { $0.deferrableReadOnly = false }
        flip("failedStatementAbortsTransaction: true") { $0.failedStatementAbortsTransaction = true }
        var lines: [String] = []
        for (name, capabilities) in flips {
            for replay in Replay.allCases {
                // Levels grouped by (embedded verdict, flipped verdict); a replay that is no longer run is one row.
                var groups: [(before: String, after: String, levels: [IsolationLevel])] = []
                for level in replay.levels {
                    let before = replay.expectedOutcome(at: level, on: base)
                    let after = replay.expectedOutcome(at: level, on: capabilities)
                    guard before != after else { continue }
                    let beforeText = after.verdict == nil ? "any" : before.description
                    if let i = groups.firstIndex(where: { $0.before == beforeText && $0.after == after.description }) {
                        groups[i].levels.append(level)
                    } else {
                        groups.append((beforeText, after.description, [level]))
                    }
                }
                for group in groups {
                    let levels =
                        group.levels == replay.levels && replay.levels.count > 1
                        ? "all" : group.levels.map(\.rawValue).joined(separator: ", ")
                    lines.append("| `\(name)` | `\(replay)` | \(levels) | \(group.before) | \(group.after) |")
                }
            }
        }
        #expect(lines.count > 10)
        let missing = lines.filter { !design.contains($0) }
        if !missing.isEmpty {
            let text = "DESIGN.md lacks these lines:\n" + missing.joined(separator: "\n")
            Issue.record(Comment(rawValue: text))
        }
    }
}

/// Records one issue with the whole matrix (actual, expected where different, details of each mismatch) unless
/// every cell matched.
func expectConforms(_ report: ConformanceReport, sourceLocation: SourceLocation = #_sourceLocation) {
    if !report.conforms {
        Issue.record(
            "\(report.backend) does not match its expected table:\n\(report.matrix())", sourceLocation: sourceLocation)
    }
}

/// The engine with a lock-wait hook that watches the wrong key: it never reports a wait, so a replay that orders a
/// step after one stalls.
struct BlindBackend: ConformanceBackend {
    let name = "blind"
    let capabilities = BackendCapabilities.embeddedEngine
    /// Every store it made, in order.
    let stores = Locked<[Database]>([])

    func makeStore(_ options: StoreOptions) async throws -> Database {
        let db = makeDatabase(lockTimeout: options.lockTimeout)
        stores.withLock { $0.append(db) }
        return db
    }

    func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes, in store: Database) async throws {
        await store.waitUntilWaiting(transaction, on: "a key nobody locks")
    }
}
