import IsoKVSync
import Dispatch
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The write-ahead log of a data directory: one record per committed transaction, group-committed by one flusher
/// thread, plus checkpoints that let old segments go.
///
/// Entry points:
/// - open/close: ``open(directory:options:)`` (takes the directory lock, recovers, starts the flusher),
///   ``close()``.
/// - commit: ``append(_:)`` (enqueue and wait), or ``enqueue(_:)`` + ``waitDurable(_:)`` when the engine must
///   fix the log order inside its own commit critical section.
/// - checkpoint: ``checkpoint(sequence:entries:)``, ``walBytes``.
///
/// Lock order: `shared` (the `Locked<LogState>`) is a leaf lock; no I/O and no continuation resume happens while
/// it is held. The flusher thread owns the segment file descriptor (`FlusherContext`); checkpoints run their I/O
/// on `io`, a serial dispatch queue — never on a cooperative thread.
///
/// ```swift
/// let (log, recovered) = try await WriteAheadLog.open(directory: "data")
/// // apply recovered.checkpointEntries, then recovered.commits…
/// try await log.append(CommitRecord(sequence: recovered.lastSequence + 1, writes: writes))
/// await log.close()
/// ```
///
/// Not for: several processes sharing one directory (the lock forbids it), or records over 64 MiB.
public final class WriteAheadLog: Sendable {
    /// The data directory.
    public let directory: String
    /// Options given at open (immutable).
    public let options: WALOptions
    /// Everything committers, the flusher and checkpoints share. Leaf lock: never held across I/O or await.
    let shared: Locked<LogState>
    /// Wakes the flusher when it sleeps (posted only when `LogState.flusherSleeping` was set).
    let wake: WakeSignal
    /// Held from open to close.
    let directoryLock: DirectoryLock
    /// Serial queue for checkpoint I/O (blocking calls off the cooperative pool).
    let io: DispatchQueue
    /// The thread that resumes large acknowledged batches while the flusher syncs the next one.
    let notifier = Notifier()

    init(directory: String, options: WALOptions, lock: DirectoryLock, state: LogState) {
        self.directory = directory
        self.options = options
        self.directoryLock = lock
        self.shared = Locked(state)
        self.wake = WakeSignal()
        self.io = DispatchQueue(label: "isokv.wal.io")
    }

    /// Opens (creating if needed) the data directory, recovers it and starts the flusher.
    ///
    /// Recovery truncates a torn tail of the last segment, then starts a fresh segment; corruption anywhere else
    /// throws (``StorageError/corruptSegment(file:offset:reason:)``, ``StorageError/corruptCheckpoint(file:offset:reason:)``,
    /// ``StorageError/missingSegment(file:)``). A directory already open elsewhere throws
    /// ``StorageError/directoryLocked(path:)``. The blocking work runs on a dispatch thread.
    public static func open(directory: String, options: WALOptions = WALOptions()) async throws
        -> (WriteAheadLog, RecoveredState)
    {
        let result: Result<(WriteAheadLog, RecoveredState), StorageError> = await runBlocking {
            Result { () throws(StorageError) in try openBlocking(directory: directory, options: options) }
        }
        return try result.get()
    }

    static func openBlocking(directory: String, options: WALOptions) throws(StorageError) -> (
        WriteAheadLog, RecoveredState
    ) {
        try FileIO.makeDirectory(directory)
        let lock = try DirectoryLock(directory: directory)
        do throws(StorageError) {
            let recovered = try Recovery.scan(directory: directory, repair: true, faults: options.faults)
            let number = (recovered.segments.last?.number ?? 0) + 1
            let context = try FlusherContext.create(
                directory: directory, number: number,
                previousBytes: recovered.segments.last?.bytes ?? 0, options: options)
            var state = LogState()
            state.closedSegments = recovered.segments.map {
                ClosedSegment(number: $0.number, maxSequence: $0.maxSequence, bytes: $0.bytes)
            }
            state.currentSegment = number
            state.stats.segmentsCreated = 1
            if options.durability != .unsafeNoSync { state.stats.syncs = 1 }
            let log = WriteAheadLog(directory: directory, options: options, lock: lock, state: state)
            log.startFlusher(context)
            return (log, recovered)
        } catch {
            lock.release()
            throw error
        }
    }

    // MARK: Appending

    /// Appends one commit record and returns once it is durable under ``WALOptions/durability``.
    ///
    /// Concurrent callers are group-committed: the flusher writes everything queued with one write(2) and one
    /// fdatasync, then resumes all their continuations. Throws ``StorageError/logFailed(cause:)`` if this or an
    /// earlier batch could not be written or synced (the commit must be treated as failed; it may or may not be
    /// found after a reopen, but never partly), ``StorageError/closed``, ``StorageError/recordTooLarge(bytes:limit:)``.
    public func append(_ record: CommitRecord) async throws {
        var frame: [UInt8] = []
        frame.reserveCapacity(64 + record.writes.reduce(0) { $0 + 32 + $1.key.count + ($1.value?.count ?? 0) })
        try WALFormat.appendFrame(record, to: &frame)
        let mode = options.durability
        if mode == .unsafeNoSync {
            let ticket = try enqueueFrame(frame, sequence: record.sequence)
            try await waitDurable(ticket, force: ticket.overQueueLimit)  // (records the acknowledgment)
            return
        }
        try await suspendCommitter { (continuation: CommitContinuation) in
            let outcome = shared.withLock { s -> EnqueueOutcome in
                if let failure = s.failure { return .rejected(failure) }
                if s.closing { return .rejected(.closed) }
                let end = s.enqueueLocked(frame, sequence: record.sequence)
                s.waiters.append(Waiter(end: end, continuation: continuation))
                return s.takeWakeLocked() ? .queuedWake : .queued
            }
            switch outcome {
            case .rejected(let error): continuation.resume(throwing: error)
            case .queuedWake: wake.signal()
            case .queued: break
            }
        }
    }

    /// Queues a record without waiting: the log order of records is the order of `enqueue` calls, so an engine
    /// can call this inside its commit critical section and wait outside it with ``waitDurable(_:)``.
    /// Synchronous and short (encoding, then one `memcpy` under a lock).
    public func enqueue(_ record: CommitRecord) throws(StorageError) -> DurabilityTicket {
        var frame: [UInt8] = []
        try WALFormat.appendFrame(record, to: &frame)
        return try enqueueFrame(frame, sequence: record.sequence)
    }

    /// Queues a frame; the ticket also says whether the queue is over ``WALOptions/maxQueuedBytes``.
    func enqueueFrame(_ frame: [UInt8], sequence: UInt64) throws(StorageError) -> DurabilityTicket {
        let limit = UInt64(options.maxQueuedBytes)
        let outcome = shared.withLock { s -> Result<(UInt64, Bool, Bool), StorageError> in
            if let failure = s.failure { return .failure(failure) }
            if s.closing { return .failure(.closed) }
            let end = s.enqueueLocked(frame, sequence: sequence)
            return .success((end, end - s.writtenLSN > limit, s.takeWakeLocked()))
        }
        let (end, overLimit, wakeFlusher) = try outcome.get()
        if wakeFlusher { wake.signal() }
        return DurabilityTicket(end: end, overQueueLimit: overLimit)
    }

    /// Waits until the record behind `ticket` is durable under the log's mode (in `.unsafeNoSync`: returns at
    /// once unless the queue was over ``WALOptions/maxQueuedBytes``, then waits for the write). Throws like
    /// ``append(_:)``.
    public func waitDurable(_ ticket: DurabilityTicket) async throws {
        try await waitDurable(ticket, force: ticket.overQueueLimit)
    }

    func waitDurable(_ ticket: DurabilityTicket, force: Bool) async throws {
        let unsafe = options.durability == .unsafeNoSync
        if unsafe && !force {
            let failure = shared.withLock { s in s.acknowledgeUnsafeLocked(ticket.end) ? nil : s.failure }
            if let failure { throw failure }
            return
        }
        try await suspendCommitter { (continuation: CommitContinuation) in
            let outcome = shared.withLock { s -> Result<Bool, StorageError> in
                if s.ackedLSN(options.durability) >= ticket.end {
                    if unsafe { _ = s.acknowledgeUnsafeLocked(ticket.end) }
                    return .success(true)
                }
                if unsafe && s.failure != nil && s.acknowledgeUnsafeLocked(ticket.end) { return .success(true) }
                if let failure = s.failure { return .failure(failure) }
                s.waiters.append(Waiter(end: ticket.end, continuation: continuation))
                return .success(false)
            }
            switch outcome {
            case .success(true): continuation.resume()
            case .success(false): break
            case .failure(let error): continuation.resume(throwing: error)
            }
        }
    }

    /// Counters since open.
    public var statistics: WALStatistics { shared.withLock { $0.stats } }

    /// Bytes in WAL segments the last checkpoint did not allow to delete (closed segments plus the current one's
    /// written bytes): the engine checkpoints when this grows past its threshold.
    public var walBytes: Int64 {
        shared.withLock { s in s.closedSegments.reduce(0) { $0 + $1.bytes } + s.currentSegmentBytes }
    }

    /// The error that put the log in the failed state, if any.
    public var failure: StorageError? { shared.withLock { $0.failure } }

    // MARK: Closing

    /// Writes (and, except in `.unsafeNoSync`, syncs) everything queued, stops the flusher and notifier threads,
    /// waits for a running checkpoint to finish, releases the lock. Appends after close throw
    /// ``StorageError/closed``. Call exactly once (the threads keep the log alive until then).
    public func close() async {
        await suspendPlain { (continuation: PlainContinuation) in
            let (exited, wakeFlusher) = shared.withLock { s -> (Bool, Bool) in
                s.closing = true
                if s.flusherExited { return (true, false) }
                s.exitContinuation = continuation
                return (false, s.takeWakeLocked())
            }
            if exited { continuation.resume() }
            if wakeFlusher { wake.signal() }
        }
        // A checkpoint in flight still uses the directory: wait for it (polling; close is rare) before unlocking.
        while shared.withLock({ $0.checkpointRunning }) {
            try? await Task.sleep(for: .milliseconds(1))
        }
        await WriteAheadLog.runBlocking(on: io) {}
        directoryLock.release()
    }

    /// Runs blocking work on a dispatch thread and suspends the caller until it is done.
    static func runBlocking<T: Sendable>(on queue: DispatchQueue = .global(), _ body: @escaping @Sendable () -> T) async
        -> T
    {
        await suspendReturning { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}

enum EnqueueOutcome {
    case rejected(StorageError)
    case queued
    case queuedWake
}

/// A committer waiting for its record; resumed by the flusher once `ackedLSN >= end`, or with the failure.
struct Waiter {
    let end: UInt64
    let continuation: CommitContinuation
}

/// A segment the flusher has closed (rotated out): it only waits for a checkpoint covering `maxSequence`.
struct ClosedSegment: Sendable {
    let number: UInt64
    let maxSequence: UInt64
    let bytes: Int64
}

/// The state shared by committers, the flusher and checkpoints, guarded by `WriteAheadLog.shared`.
///
/// Positions are *LSNs*: bytes enqueued since open. Invariant: `syncedLSN <= writtenLSN <= enqueuedLSN`, and
/// `enqueuedLSN - writtenLSN` = `queue.count` + the batch the flusher is writing.
struct LogState {
    /// Framed records not yet taken by the flusher, in enqueue order. Appended by committers; swapped out whole
    /// by the flusher (which gives back its emptied buffer, so steady state allocates nothing).
    var queue: [UInt8] = []
    /// Highest sequence in `queue` (moves with it to the flusher, then to the segment summary).
    var queueMaxSequence: UInt64 = 0
    /// Records in `queue`.
    var queuedRecords = 0
    /// When > 0, the flusher waits (bounded) for `queuedRecords` to reach it; the enqueuer that reaches it
    /// clears it and posts `wake`. Set and cleared by the flusher; cleared by that enqueuer.
    var gatherTarget = 0
    /// End of the last enqueued record.
    var enqueuedLSN: UInt64 = 0
    /// End of the last record handed to write(2). Only the flusher advances it.
    var writtenLSN: UInt64 = 0
    /// End of the last record covered by an fdatasync. Only the flusher advances it.
    var syncedLSN: UInt64 = 0
    /// Committers waiting for their LSN to be acknowledged; any order (`waitDurable` may register late).
    var waiters: [Waiter] = []
    /// Set once, by the flusher, when a write/fsync/rotation fails; then every append throws it. Never cleared.
    var failure: StorageError?
    /// `.unsafeNoSync`: the end of the newest record whose wait returned (acknowledged at its enqueue, or written).
    /// Invariant: acknowledgments are a prefix of the log — after a failure, a record at or below this end is still
    /// acknowledged, because a later one was (the engine publishes a commit's sequence number and with it every
    /// earlier commit, so an earlier one must not fail after a later one succeeded).
    var unsafeAckedLSN: UInt64 = 0
    /// Set by `close()`; the flusher drains the queue and exits.
    var closing = false
    /// True while the flusher is (about to be) parked on `wake`: the next enqueuer clears it and posts.
    var flusherSleeping = false
    /// Set by the flusher as it exits; `exitContinuation` (close) is resumed then.
    var flusherExited = false
    var exitContinuation: PlainContinuation?
    /// Closed segments, oldest first, contiguous numbers, all older than `currentSegment`.
    var closedSegments: [ClosedSegment] = []
    /// The segment the flusher writes to.
    var currentSegment: UInt64 = 0
    /// Bytes in the current segment (header included), updated after each batch.
    var currentSegmentBytes: Int64 = Int64(WALFormat.segmentHeaderBytes)
    /// A checkpoint is being written (at most one at a time).
    var checkpointRunning = false
    var stats = WALStatistics()

    mutating func enqueueLocked(_ frame: [UInt8], sequence: UInt64) -> UInt64 {
        queue.append(contentsOf: frame)
        queuedRecords += 1
        queueMaxSequence = max(queueMaxSequence, sequence)
        enqueuedLSN += UInt64(frame.count)
        stats.appends += 1
        return enqueuedLSN
    }

    /// Whether the caller must post `wake` (the flusher was sleeping); clears the flag so only one caller posts.
    mutating func takeWakeLocked() -> Bool {
        if gatherTarget > 0 && queuedRecords >= gatherTarget {
            gatherTarget = 0
            return true
        }
        guard flusherSleeping else { return false }
        flusherSleeping = false
        return true
    }

    /// `.unsafeNoSync`: whether the record ending at `end` is acknowledged now (no failure, already written, or
    /// below an acknowledged one: ``unsafeAckedLSN``); if so, records the acknowledgment.
    mutating func acknowledgeUnsafeLocked(_ end: UInt64) -> Bool {
        guard failure == nil || end <= Swift.max(unsafeAckedLSN, writtenLSN) else { return false }
        if end > unsafeAckedLSN { unsafeAckedLSN = end }
        return true
    }

    /// The LSN up to which appends are acknowledged in `mode`.
    func ackedLSN(_ mode: DurabilityMode) -> UInt64 {
        switch mode {
        case .fsync: return syncedLSN
        case .buffered, .unsafeNoSync: return writtenLSN
        }
    }

    /// Removes and returns the waiters whose records are acknowledged.
    mutating func takeReadyWaitersLocked(_ mode: DurabilityMode) -> [Waiter] {
        let acked = ackedLSN(mode)
        if waiters.allSatisfy({ $0.end <= acked }) {
            defer { waiters.removeAll(keepingCapacity: true) }
            return waiters
        }
        var ready: [Waiter] = []
        waiters.removeAll { w in
            if w.end <= acked { ready.append(w); return true }
            return false
        }
        return ready
    }
}

/// A counting semaphore (POSIX `sem_t`) that wakes the flusher thread.
final class WakeSignal: @unchecked Sendable {
    // Safe to share: sem_t is designed for concurrent sem_post/sem_wait from any thread, and the pointer is
    // written once at init and freed only in deinit.
    private let sem: UnsafeMutablePointer<sem_t>

    init() {
        sem = .allocate(capacity: 1)
        sem_init(sem, 0, 0)
    }

    deinit {
        sem_destroy(sem)
        sem.deallocate()
    }

    func signal() { sem_post(sem) }

    func wait() {
        while sem_wait(sem) != 0 && errno == EINTR {}
    }

    /// Waits for a post or until `nanoseconds` have passed.
    func wait(nanoseconds: UInt64) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let total = UInt64(deadline.tv_nsec) + nanoseconds
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        while sem_timedwait(sem, &deadline) != 0 && errno == EINTR {}
    }
}
