import Foundation
import IsoKVConformance
import IsoKVCore
import IsoKVSync
import IsoKVWorkloads

/// How the `queue` experiment's consumers claim a job.
public enum QueueClaim: String, Hashable, Sendable, Codable, CaseIterable {
    /// Read committed: the oldest job row with `lock: .forUpdate, wait: .skipLocked` (`FOR UPDATE SKIP LOCKED`),
    /// held until the job's transaction commits (done) or rolls back (the job is back in the queue).
    case skipLocked = "skip-locked"
    /// The same with `wait: .block` (`FOR UPDATE`): consumers queue behind the one holding the oldest job.
    case forUpdate = "for-update"
    /// No transaction: read the job's version, `put(job, claimed-until-T, ifVersion:)`; the claim is a lease, and a
    /// job whose lease has passed may be claimed again. Done = `delete(job, ifVersion: claim)`, then the record.
    case optimisticVersion = "optimistic-version"

    public var summary: String {
        switch self {
        case .skipLocked: return "FOR UPDATE SKIP LOCKED on the oldest job, in the job's transaction"
        case .forUpdate: return "FOR UPDATE (waiting) on the oldest job, in the job's transaction"
        case .optimisticVersion: return "put(ifVersion:) claim with a lease, delete(ifVersion:) when done"
        }
    }
}

/// The parameters of one `queue` run.
public struct QueueParameters: Hashable, Sendable, Codable {
    public var producers: Int
    public var consumers: Int
    /// Jobs, all producers together.
    public var jobs: Int
    /// Simulated work of one job while the claim is held (a `Task.sleep`), in microseconds.
    public var workMicroseconds: Int
    /// A consumer's sleep when it found no job to claim, in microseconds.
    public var pollMicroseconds: Int
    /// The lease of an optimistic claim, in milliseconds.
    public var leaseMilliseconds: Int
    /// How long the consumers go on without any job being processed before they stop (what is unprocessed then is
    /// reported lost). Counted from each consumer's own start and reset by every processed job, so time a consumer
    /// spends waiting to be scheduled on a busy machine does not count against the run.
    public var timeoutSeconds: Double
    public var seed: UInt64

    public init(
        producers: Int = 2, consumers: Int = 5, jobs: Int = 500, workMicroseconds: Int = 200,
        pollMicroseconds: Int = 500, leaseMilliseconds: Int = 200, timeoutSeconds: Double = 60, seed: UInt64 = 1
    ) {
        self.producers = producers
        self.consumers = consumers
        self.jobs = jobs
        self.workMicroseconds = workMicroseconds
        self.pollMicroseconds = pollMicroseconds
        self.leaseMilliseconds = leaseMilliseconds
        self.timeoutSeconds = timeoutSeconds
        self.seed = seed
    }

    public static func quick(seed: UInt64 = 1) -> QueueParameters {
        QueueParameters(jobs: 60, leaseMilliseconds: 100, timeoutSeconds: 30, seed: seed)
    }
}

/// One claim mode on one backend, with or without a consumer that dies holding a claim.
public struct QueueResult: Hashable, Sendable, Codable {
    public var backend: String
    public var claim: QueueClaim
    /// One consumer claimed a job and died without finishing it (rolled back, or let its lease lapse).
    public var consumerDied: Bool
    public var producers: Int
    public var consumers: Int
    public var jobs: Int
    /// Jobs whose done record is exactly 1.
    public var processedOnce: Int
    /// Jobs with no done record (lost, or left in the queue at the timeout).
    public var lost: Int
    /// Jobs processed more than once.
    public var duplicated: Int
    /// Job rows still in the queue at the end.
    public var leftInQueue: Int
    /// The dying consumer's job was finished by another consumer (nil when nobody died).
    public var diedJobRecovered: Bool?
    public var wallSeconds: Double
    public var jobsPerSecond: Double
    /// From when a consumer starts looking until it holds a job (polls of an empty queue included), nanoseconds.
    public var claimWaitP50Nanoseconds: Double
    public var claimWaitP99Nanoseconds: Double
    /// Claim attempts that found nothing to claim (empty queue, all locked, or the locked row gone).
    public var emptyPolls: Int
    /// Optimistic claims lost to another consumer (`IK412`).
    public var claimConflicts: Int
    /// Failed transactions or operations by code (retried by the consumer's loop).
    public var errors: [String: Int]
    /// Every job processed exactly once, none lost, none twice.
    public var exactlyOnce: Bool
}

/// Seed 004's job queue: M producers insert jobs, consumers claim, process and complete them, with each claim
/// mode; verified exactly-once from the store's end state (a done counter per job), also when one consumer dies
/// holding a claim.
///
/// ```swift
/// let r = try await QueueExperiment(.quick()).run(.skipLocked, consumerDies: true, on: EmbeddedLabBackend())
/// print(r.jobsPerSecond, r.exactlyOnce)   // …, true
/// ```
public struct QueueExperiment: Sendable {
    public var parameters: QueueParameters
    public var progress: LabProgress

    public init(_ parameters: QueueParameters, progress: LabProgress = LabProgress()) {
        self.parameters = parameters
        self.progress = progress
    }

    /// Every claim mode, each without and with a dying consumer.
    public func run<Backend: LabBackend>(_ claims: [QueueClaim] = QueueClaim.allCases, on backend: Backend)
        async throws -> [QueueResult]
    {
        progress.plan(claims.count * 2 * parameters.jobs, "queue on \(backend.name)")
        var results: [QueueResult] = []
        for claim in claims {
            for dies in [false, true] { results.append(try await run(claim, consumerDies: dies, on: backend)) }
        }
        return results
    }

    public func run<Backend: LabBackend>(_ claim: QueueClaim, consumerDies: Bool, on backend: Backend) async throws
        -> QueueResult
    {
        progress.label("queue \(claim.rawValue)\(consumerDies ? " (a consumer dies)" : "") on \(backend.name)")
        return try await backend.withStore { store in
            try await run(claim, consumerDies: consumerDies, store: store, backend: backend.name)
        }
    }

    /// The shared state of one run's consumers.
    final class Run: Sendable {
        let processed = Tally()
        let emptyPolls = Tally()
        let conflicts = Tally()
        let errors = CodeTally()
        /// The job the dying consumer held when it died.
        let diedJob = Locked<Bytes?>(nil)
    }

    func run<Store: KeyValueStore>(_ claim: QueueClaim, consumerDies: Bool, store: Store, backend: String)
        async throws -> QueueResult
    {
        let p = parameters
        let space = Keyspace()
        let queuePrefix = space.key("queue/")
        @Sendable func job(_ n: Int) -> Bytes {
            let digits = String(n)
            return space.key("queue/" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits)
        }
        @Sendable func done(_ jobKey: Bytes) -> Bytes { Bytes(space.key("done/").bytes + jobKey.bytes.suffix(8)) }
        let state = Run()
        let clock = ContinuousClock()
        let start = clock.now
        var waits = LatencyHistogram()
        try await withThrowingTaskGroup(of: LatencyHistogram.self) { group in
            for producer in 0..<p.producers {
                group.addTask {
                    var n = producer
                    while n < p.jobs {
                        _ = try await store.put(job(n), "ready", ifAbsent: true)
                        n += p.producers
                    }
                    return LatencyHistogram()
                }
            }
            let consumers = (0..<p.consumers).map { consumer in
                Consumer(
                    store: store, claim: claim, parameters: p, queuePrefix: queuePrefix, done: done, state: state,
                    progress: progress, dies: consumerDies && consumer == 0,
                    rng: SplitMix64(seed: p.seed &+ UInt64(consumer) &* 0x9e37_79b9_7f4a_7c15))
            }
            // The dying consumer claims first and dies before the others start: otherwise, on a busy machine, the
            // others could finish every job before it claims one, and the death would not be exercised.
            if consumerDies, let dying = consumers.first { waits.merge(try await dying.run()) }
            for consumer in consumers.dropFirst(consumerDies ? 1 : 0) {
                group.addTask { try await consumer.run() }
            }
            for try await histogram in group { waits.merge(histogram) }
        }
        let wall = (clock.now - start) / .seconds(1)

        // The verdict, from the store alone.
        var once = 0
        var lost = 0
        var duplicated = 0
        for n in 0..<p.jobs {
            switch try await store.get(done(job(n)))?.value.int64 ?? 0 {
            case 0: lost += 1
            case 1: once += 1
            default: duplicated += 1
            }
        }
        let left = try await store.transaction(.snapshot, readOnly: true) { tx in
            try await tx.scan(prefix: queuePrefix).count
        }
        var recovered: Bool? = nil
        if consumerDies {
            if let died = state.diedJob.withLock({ $0 }) {
                recovered = try await store.get(done(died))?.value.int64 == 1
            } else {
                recovered = false
            }
        }
        return QueueResult(
            backend: backend, claim: claim, consumerDied: consumerDies, producers: p.producers,
            consumers: p.consumers, jobs: p.jobs, processedOnce: once, lost: lost, duplicated: duplicated,
            leftInQueue: left, diedJobRecovered: recovered, wallSeconds: wall,
            jobsPerSecond: wall > 0 ? Double(once + duplicated) / wall : 0, claimWaitP50Nanoseconds: waits.p50,
            claimWaitP99Nanoseconds: waits.p99, emptyPolls: state.emptyPolls.count,
            claimConflicts: state.conflicts.count, errors: state.errors.counts,
            exactlyOnce: once == p.jobs && lost == 0 && duplicated == 0 && left == 0 && recovered != false)
    }
}

/// One consumer of the queue experiment.
struct Consumer<Store: KeyValueStore>: Sendable {
    let store: Store
    let claim: QueueClaim
    let parameters: QueueParameters
    let queuePrefix: Bytes
    let done: @Sendable (Bytes) -> Bytes
    let state: QueueExperiment.Run
    let progress: LabProgress
    /// Claims one job, then dies without finishing it.
    let dies: Bool
    var rng: SplitMix64

    func run() async throws -> LatencyHistogram {
        var waits = LatencyHistogram()
        var rng = self.rng
        let clock = ContinuousClock()
        var looking = clock.now
        // Stops after `timeoutSeconds` without any job processed by anyone, as this consumer saw it.
        let patience = Duration.milliseconds(Int64(parameters.timeoutSeconds * 1000))
        var seen = state.processed.count
        var lastProgress = clock.now
        while state.processed.count < parameters.jobs {
            let now = clock.now
            if state.processed.count != seen {
                seen = state.processed.count
                lastProgress = now
            } else if now - lastProgress > patience {
                break
            }
            do {
                let outcome: Outcome
                switch claim {
                case .skipLocked, .forUpdate: outcome = try await transactional(since: looking, &waits)
                case .optimisticVersion: outcome = try await optimistic(since: looking, &waits, &rng)
                }
                switch outcome {
                case .empty:
                    state.emptyPolls.add(1)
                    try await Task.sleep(for: .microseconds(parameters.pollMicroseconds))
                case .done:
                    state.processed.add(1)
                    progress.advance()
                    looking = clock.now
                case .died:
                    return waits
                case .lostClaim:
                    looking = clock.now
                }
            } catch let error as IsoKVError {
                state.errors.add(error.code.rawValue)
                try await Task.sleep(for: .microseconds(parameters.pollMicroseconds))
            }
        }
        return waits
    }

    enum Outcome { case empty, done, died, lostClaim }

    /// One claim in a read-committed transaction: lock the oldest job (skipping or waiting for locked ones),
    /// work, record it done and delete it, commit. The dying consumer rolls back instead, once.
    private func transactional(since looking: ContinuousClock.Instant, _ waits: inout LatencyHistogram)
        async throws -> Outcome
    {
        let tx = try await store.begin(.readCommitted, readOnly: false)
        do {
            let rows = try await tx.scan(
                .prefix(queuePrefix), limit: 1, lock: .forUpdate, wait: claim == .skipLocked ? .skipLocked : .block)
            guard let row = rows.first else {
                try await tx.rollback()
                return .empty
            }
            waits.record(ContinuousClock.now - looking)
            try await Task.sleep(for: .microseconds(parameters.workMicroseconds))
            if dies, state.diedJob.withLock({ $0 }) == nil {
                state.diedJob.withLock { $0 = row.key }
                try await tx.rollback()  // what the server does when the consumer's connection drops
                return .died
            }
            let doneKey = done(row.key)
            let n = try await tx.get(doneKey)?.int64 ?? 0
            try await tx.put(doneKey, Bytes(n + 1))
            try await tx.delete(row.key)
            try await tx.commit()
            return .done
        } catch {
            try? await tx.rollback()
            throw error
        }
    }

    /// One optimistic claim: find a claimable job (ready, or its lease passed), claim it by version with a lease,
    /// work, complete it by version (delete), then record it done. The dying consumer lets its lease lapse.
    private func optimistic(
        since looking: ContinuousClock.Instant, _ waits: inout LatencyHistogram, _ rng: inout SplitMix64
    ) async throws -> Outcome {
        let candidates = try await store.transaction(.readCommitted, readOnly: true, retry: .none) { tx in
            try await tx.scan(prefix: queuePrefix, limit: 2 * parameters.consumers)
        }
        let now = Self.wallMilliseconds()
        let claimable = candidates.filter { row in
            guard let text = row.value.string else { return false }
            if text == "ready" { return true }
            if text.hasPrefix("claimed-until:"), let until = Int64(text.dropFirst("claimed-until:".count)) {
                return until < now
            }
            return false
        }
        guard !claimable.isEmpty else { return .empty }
        let pick = claimable[rng.next(below: claimable.count)]
        guard let current = try await store.get(pick.key), current.value == pick.value else {
            state.conflicts.add(1)
            return .lostClaim
        }
        let claimed: UInt64
        do {
            claimed = try await store.put(
                pick.key, Bytes("claimed-until:\(now + Int64(parameters.leaseMilliseconds))"),
                ifVersion: current.version)
        } catch let error as IsoKVError where error.code == .versionMismatch {
            state.conflicts.add(1)
            return .lostClaim
        }
        waits.record(ContinuousClock.now - looking)
        try await Task.sleep(for: .microseconds(parameters.workMicroseconds))
        if dies, state.diedJob.withLock({ $0 }) == nil {
            state.diedJob.withLock { $0 = pick.key }
            return .died  // the lease lapses; another consumer claims the job again
        }
        do {
            try await store.delete(pick.key, ifVersion: claimed)
        } catch let error as IsoKVError where error.code == .versionMismatch {
            state.conflicts.add(1)  // the lease lapsed and another consumer took the job over
            return .lostClaim
        }
        _ = try await store.increment(done(pick.key))
        return .done
    }

    /// Milliseconds since 1970 (leases must mean the same to every consumer, whichever process they run in).
    static func wallMilliseconds() -> Int64 {
        Int64((Date.timeIntervalSinceReferenceDate + 978_307_200) * 1000)
    }
}
