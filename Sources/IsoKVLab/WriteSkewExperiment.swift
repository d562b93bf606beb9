import IsoKVConformance
import IsoKVCore
import IsoKVWorkloads

/// The two write-skew scenarios of seed 003: a check over several rows, then a write the check allowed.
public enum WriteSkewScenario: String, Hashable, Sendable, Codable, CaseIterable {
    /// Two doctors on call; each asks to go off call if at least two are on. Invariant: at least one stays on.
    case doctors
    /// Two guests book overlapping nights of the same room; each checks the room's bookings for an overlap and
    /// inserts its own if there is none. Invariant: no two bookings of a room overlap.
    case hotel

    public var invariant: String {
        switch self {
        case .doctors: return "at least one doctor stays on call"
        case .hotel: return "no two bookings of a room overlap"
        }
    }
}

/// How the transactions of a write-skew trial protect their check.
public struct WriteSkewMode: Hashable, Sendable, Codable, CustomStringConvertible {
    public var level: IsolationLevel
    /// Lock what the check depends on first: the shift's doctor rows (`scan(lock: .forUpdate)`), or the room's row
    /// (a lock row standing for the range, since an empty range has no row to lock).
    public var explicitLock: Bool

    public init(_ level: IsolationLevel, explicitLock: Bool = false) {
        self.level = level
        self.explicitLock = explicitLock
    }

    /// The modes the experiment runs: three levels, and read committed with explicit locks.
    public static let all: [WriteSkewMode] = [
        WriteSkewMode(.readCommitted), WriteSkewMode(.snapshot), WriteSkewMode(.serializable),
        WriteSkewMode(.readCommitted, explicitLock: true)
    ]

    /// Whether the mode claims to keep the invariant.
    public var preventsWriteSkew: Bool { explicitLock || level == .serializable }

    public var description: String { level.rawValue + (explicitLock ? " + lock" : "") }
}

public struct WriteSkewParameters: Hashable, Sendable, Codable {
    /// Trials per scenario and mode: each a fresh pair of rows and two concurrent transactions.
    public var trials: Int
    /// The pause between a transaction's check and its write, in microseconds: it lets the two transactions'
    /// checks overlap, as a request's work would.
    public var thinkMicroseconds: Int
    /// Attempts of one transaction (retried on `40001`/`40P01`).
    public var maxAttempts: Int
    public var seed: UInt64

    public init(trials: Int = 100, thinkMicroseconds: Int = 1_000, maxAttempts: Int = 10, seed: UInt64 = 1) {
        self.trials = trials
        self.thinkMicroseconds = thinkMicroseconds
        self.maxAttempts = maxAttempts
        self.seed = seed
    }

    public static func quick(seed: UInt64 = 1) -> WriteSkewParameters {
        WriteSkewParameters(trials: 20, seed: seed)
    }
}

public struct WriteSkewResult: Hashable, Sendable, Codable {
    public var backend: String
    public var scenario: WriteSkewScenario
    public var mode: WriteSkewMode
    public var trials: Int
    /// Trials whose end state breaks the invariant.
    public var broken: Int
    /// Failed attempts by code (each retried, or given up after `maxAttempts`).
    public var aborts: [String: Int]
    /// Transactions that ran out of attempts or failed otherwise.
    public var failed: Int
    public var wallSeconds: Double
    public var claimsToPrevent: Bool
    /// `FAIL` when the mode claims to prevent write skew and a trial broke the invariant.
    public var correctness: LostUpdateResult.Correctness
}

/// The `write-skew` experiment: the doctors on call and the hotel booking, each trial two concurrent
/// transactions, under each mode; how often the invariant breaks.
///
/// ```swift
/// let results = try await WriteSkewExperiment(.quick()).run(on: EmbeddedLabBackend())
/// print(results.map { "\($0.scenario) \($0.mode): \($0.broken)/\($0.trials)" })
/// ```
public struct WriteSkewExperiment: Sendable {
    public var parameters: WriteSkewParameters
    public var progress: LabProgress

    public init(_ parameters: WriteSkewParameters, progress: LabProgress = LabProgress()) {
        self.parameters = parameters
        self.progress = progress
    }

    public func run<Backend: LabBackend>(
        _ scenarios: [WriteSkewScenario] = WriteSkewScenario.allCases, modes: [WriteSkewMode] = WriteSkewMode.all,
        on backend: Backend
    ) async throws -> [WriteSkewResult] {
        progress.plan(scenarios.count * modes.count * parameters.trials, "write-skew on \(backend.name)")
        var results: [WriteSkewResult] = []
        for scenario in scenarios {
            for mode in modes { results.append(try await run(scenario, mode, on: backend)) }
        }
        return results
    }

    public func run<Backend: LabBackend>(_ scenario: WriteSkewScenario, _ mode: WriteSkewMode, on backend: Backend)
        async throws -> WriteSkewResult
    {
        progress.label("write-skew \(scenario.rawValue) \(mode) on \(backend.name)")
        return try await backend.withStore { store in
            try await run(scenario, mode, store: store, backend: backend.name)
        }
    }

    func run<Store: KeyValueStore>(
        _ scenario: WriteSkewScenario, _ mode: WriteSkewMode, store: Store, backend: String
    ) async throws -> WriteSkewResult {
        let p = parameters
        let space = Keyspace()
        let aborts = CodeTally()
        let retry = RetryPolicy(maxAttempts: p.maxAttempts) { event in aborts.add(event.error.code.rawValue) }
        let think = RoundTrip(microseconds: p.thinkMicroseconds)
        var rng = SplitMix64(seed: p.seed)
        var broken = 0
        var failed = 0
        let clock = ContinuousClock()
        let start = clock.now
        for trial in 0..<p.trials {
            let doctors = space.key("shift/\(trial)/doctor/")
            let room = space.key("room/\(trial)")
            let bookings = space.key("booking/\(trial)/")
            switch scenario {
            case .doctors:
                for name in ["alice", "bob"] { _ = try await store.put(Bytes(doctors.bytes + Bytes(name).bytes), "on") }
            case .hotel:
                _ = try await store.put(room, "room")
            }
            // Which of the two starts first is drawn from the seed; both are started at once.
            let first = rng.next(below: 2)
            let stays: [(String, ClosedRange<Int>)] = [("alice", 10...19), ("bob", 15...24)]
            failed += await withTaskGroup(of: Int.self) { group in
                for k in 0..<2 {
                    let (name, nights) = stays[(k + first) % 2]
                    group.addTask {
                        do {
                            try await store.transaction(mode.level, retry: retry) { tx in
                                switch scenario {
                                case .doctors:
                                    let rows =
                                        mode.explicitLock
                                        ? try await tx.scan(.prefix(doctors), lock: .forUpdate)
                                        : try await tx.scan(prefix: doctors)
                                    let onCall = rows.filter { $0.value == "on" }.count
                                    try await think()
                                    if onCall >= 2 { try await tx.put(Bytes(doctors.bytes + Bytes(name).bytes), "off") }
                                case .hotel:
                                    if mode.explicitLock { try await tx.lock(room, .forUpdate) }
                                    let taken = try await tx.scan(prefix: bookings).contains { row in
                                        guard let text = row.value.string, let range = Self.nights(text) else {
                                            return false
                                        }
                                        return range.overlaps(nights)
                                    }
                                    try await think()
                                    if !taken {
                                        try await tx.insert(
                                            Bytes(bookings.bytes + Bytes(name).bytes),
                                            Bytes("\(nights.lowerBound)-\(nights.upperBound)"))
                                    }
                                }
                            }
                            return 0
                        } catch let error as IsoKVError {
                            if error.isRetryable { aborts.add(error.code.rawValue) }
                            return 1
                        } catch {
                            return 1
                        }
                    }
                }
                return await group.reduce(0, +)
            }
            switch scenario {
            case .doctors:
                let on = try await store.transaction(.snapshot, readOnly: true) { tx in
                    try await tx.scan(prefix: doctors).filter { $0.value == "on" }.count
                }
                if on == 0 { broken += 1 }
            case .hotel:
                let rows = try await store.transaction(.snapshot, readOnly: true) { tx in
                    try await tx.scan(prefix: bookings)
                }
                if rows.count > 1 { broken += 1 }
            }
            progress.advance()
        }
        let wall = (clock.now - start) / .seconds(1)
        let claims = mode.preventsWriteSkew
        return WriteSkewResult(
            backend: backend, scenario: scenario, mode: mode, trials: p.trials, broken: broken, aborts: aborts.counts,
            failed: failed, wallSeconds: wall, claimsToPrevent: claims,
            correctness: claims
                ? (broken == 0 ? .correct : .fail) : (broken == 0 ? .unprotectedNoLossThisRun : .brokenAsExpected))
    }

    /// `"10-19"` → `10...19`.
    static func nights(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-")
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a <= b else { return nil }
        return a...b
    }
}
