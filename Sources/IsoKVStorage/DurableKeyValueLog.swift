import IsoKVSync

/// The reference state machine: an in-memory map of key → (value, version) made durable by a
/// ``WriteAheadLog``. It stands in for the MVCC engine (which will replace it) so that recovery, checkpoints and
/// the crash test can be exercised now, and it shows the engine the intended call sequence.
///
/// Commits are serialised by one lock: the commit closure reads the current map and returns its writes; the
/// record gets the next sequence, is *enqueued* in the log and applied to the map inside the lock (so log order =
/// sequence order = apply order), and the caller then waits for durability outside the lock. Readers may thus
/// see a commit a few microseconds before it is durable — like a `.readUncommitted` reader; the engine will
/// only publish after ``WriteAheadLog/waitDurable(_:)``.
///
/// ```swift
/// let kv = try await DurableKeyValueLog.open(directory: "data")
/// try await kv.commit { view in [(Array("a".utf8), [1])] }
/// let (value, version) = kv.get(Array("a".utf8))!
/// await kv.close()
/// ```
public final class DurableKeyValueLog: Sendable {
    /// A key's current value and version.
    public struct Entry: Sendable, Hashable {
        public var value: [UInt8]
        public var version: UInt64
    }

    /// The log (exposed for statistics and tests).
    public let log: WriteAheadLog
    /// The map and the last sequence, guarded together so a snapshot is a consistent cut.
    let state: Locked<MapState>
    /// Checkpoint automatically once the WAL holds this many bytes (nil: only on demand).
    let checkpointThreshold: Int64?

    struct MapState {
        /// Live keys only (a delete removes the key; its version is not kept).
        var map: [[UInt8]: Entry] = [:]
        /// Sequence of the last commit applied to `map`; every commit ≤ it is applied, none after.
        var lastSequence: UInt64 = 0
        /// An automatic checkpoint task is running.
        var checkpointScheduled = false
    }

    private init(log: WriteAheadLog, state: MapState, checkpointThreshold: Int64?) {
        self.log = log
        self.state = Locked(state)
        self.checkpointThreshold = checkpointThreshold
    }

    /// Opens the directory and rebuilds the map: checkpoint entries, then the commits after it.
    public static func open(
        directory: String, options: WALOptions = WALOptions(),
        checkpointEveryWALBytes: Int64? = nil
    ) async throws -> DurableKeyValueLog {
        let (log, recovered) = try await WriteAheadLog.open(directory: directory, options: options)
        var s = MapState()
        for e in recovered.checkpointEntries {
            if let v = e.value { s.map[e.key] = Entry(value: v, version: e.version) }
        }
        for record in recovered.commits { s.applyLocked(record) }
        s.lastSequence = recovered.lastSequence
        return DurableKeyValueLog(log: log, state: s, checkpointThreshold: checkpointEveryWALBytes)
    }

    /// Commits the writes `body` computes from the current map (key → new value, nil to delete) as one record;
    /// returns its sequence once durable. Each written key's version becomes its old version + 1.
    /// An empty write list commits nothing and returns the current last sequence.
    @discardableResult
    public func commit(_ body: ([[UInt8]: Entry]) throws -> [([UInt8], [UInt8]?)]) async throws -> UInt64 {
        let (sequence, ticket) = try state.withLock { s throws -> (UInt64, DurabilityTicket?) in
            let changes = try body(s.map)
            if changes.isEmpty { return (s.lastSequence, nil) }
            let sequence = s.lastSequence + 1
            let writes = changes.map { key, value in
                KeyWrite(key: key, value: value, version: (s.map[key]?.version ?? 0) + 1)
            }
            let record = CommitRecord(sequence: sequence, writes: writes)
            let ticket = try log.enqueue(record)
            s.applyLocked(record)
            s.lastSequence = sequence
            return (sequence, ticket)
        }
        guard let ticket else { return sequence }
        try await log.waitDurable(ticket)
        if let threshold = checkpointThreshold, log.walBytes >= threshold { scheduleCheckpoint() }
        return sequence
    }

    /// The current value and version of `key`.
    public func get(_ key: [UInt8]) -> Entry? { state.withLock { $0.map[key] } }

    /// A consistent copy of the whole map and the sequence it reflects.
    public func snapshot() -> (sequence: UInt64, map: [[UInt8]: Entry]) {
        state.withLock { ($0.lastSequence, $0.map) }
    }

    /// Writes a checkpoint of the current state (see ``WriteAheadLog/checkpoint(sequence:entries:)``).
    public func checkpoint() async throws {
        let (sequence, map) = snapshot()
        let entries = map.map { KeyWrite(key: $0.key, value: $0.value.value, version: $0.value.version) }
        try await log.checkpoint(sequence: sequence, entries: AsyncEntries(entries))
    }

    private func scheduleCheckpoint() {
        let start = state.withLock { s -> Bool in
            if s.checkpointScheduled { return false }
            s.checkpointScheduled = true
            return true
        }
        guard start else { return }
        Task {
            // A failed automatic checkpoint leaves the WAL longer; the next commit over the threshold retries.
            try? await self.checkpoint()
            self.state.withLock { $0.checkpointScheduled = false }
        }
    }

    /// Closes the log (see ``WriteAheadLog/close()``).
    public func close() async { await log.close() }
}

extension DurableKeyValueLog.MapState {
    mutating func applyLocked(_ record: CommitRecord) {
        for w in record.writes {
            if let v = w.value {
                map[w.key] = DurableKeyValueLog.Entry(value: v, version: w.version)
            } else {
                map[w.key] = nil
            }
        }
        lastSequence = max(lastSequence, record.sequence)
    }
}

/// Adapts any `Sequence` of ``KeyWrite`` to the `AsyncSequence` that ``WriteAheadLog/checkpoint(sequence:entries:)``
/// takes (an engine with an async snapshot iterator passes that directly).
public struct AsyncEntries<Base: Sequence>: AsyncSequence where Base.Element == KeyWrite {
    public typealias Element = KeyWrite
    let base: Base

    public init(_ base: Base) { self.base = base }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var iterator: Base.Iterator
        public mutating func next() async -> KeyWrite? { iterator.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(iterator: base.makeIterator()) }
}

extension AsyncEntries: Sendable where Base: Sendable {}
