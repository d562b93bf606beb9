import IsoKVCore
import IsoKVStorage

extension Database {
    /// Writes a checkpoint now (readers and writers keep running; it pins no snapshot), then deletes the WAL
    /// segments it covers. Throws `IsoKVError`: `55000` if the background checkpoint is running,
    /// `58030` if the log failed or a write did, `57P01` after ``close()``. Does nothing for an in-memory database.
    ///
    /// ```swift
    /// try await db.checkpoint()
    /// ```
    public func checkpoint() async throws {
        guard let durable else { return }
        try await mappingStorageErrors { try await durable.writeCheckpoint(self) }
    }

    /// Registers a snapshot of the newest published commit for a consistent copy (backup): GC keeps every version
    /// it sees, and cannot retire (hence remove from the scan index) a chain holding one.
    func registerSnapshotForCopy() -> UInt64 { oracle.registerSnapshot(stripe: 0) }

    func releaseSnapshotForCopy(_ snapshot: UInt64) {
        let advanced = oracle.unregisterSnapshot(snapshot, stripe: 0)
        gc.afterTransaction(touched: [], horizonAdvanced: advanced, released: snapshot, in: self)
    }
}

/// The committed state, read key by key as the checkpoint writer pulls it: the scan index is walked in key order, a
/// page of ``pageSize`` chains at a time (taken in one lock-free read of the index; a list of every chain up front
/// cost 8 bytes per key for the whole copy), and no value is copied before it is pulled. Tombstones and keys
/// without a version in bounds are skipped.
///
/// What the walk covers: every key that has a chain in the directory is in the published index at every instant
/// (Database.swift, `index`), so a key whose chain existed when the copy started and that is not deleted is met
/// by the walk, whatever happens to other keys; a key created after the start is met or not — its commits come
/// after the start.
struct CopyEntries: AsyncSequence, Sendable {
    typealias Element = KeyWrite

    /// Which version of each chain is copied.
    enum Bound: Sendable {
        /// The version visible at a registered snapshot: a consistent copy (backup). A chain holding such a
        /// version cannot be retired while the snapshot is registered, so it stays in the index.
        case snapshot(UInt64)
        /// The newest published version when the writer reaches the chain: a fuzzy copy (checkpoints), which
        /// covers the commits up to `published` as loaded before the copy started (every one was installed in a
        /// chain that was indexed before it was published). No snapshot is registered, so garbage collection
        /// keeps running (a snapshot pinned for the whole copy kept every version written meanwhile — a third
        /// more memory at the end of a long update-heavy run). `published` is loaded inside the chain's lock:
        /// garbage collection prunes a chain only under that lock, at a horizon that is at most `published` at
        /// that moment, so the newest version at or below the value loaded afterwards is still in the list. Every
        /// version read is published, hence its commit record is enqueued in the log (and durable in `.fsync`),
        /// which `WriteAheadLog.checkpoint` relies on. A chain retired while the walk holds it has only a deletion
        /// left (skipped); the key's later chain holds later commits only.
        case newestPublished(Oracle)
    }

    static let pageSize = 1024
    let index: ScanIndex
    let bound: Bound

    struct AsyncIterator: AsyncIteratorProtocol {
        let index: ScanIndex
        let bound: Bound
        var page: [KeyChain] = []
        var position = 0
        /// The last key of the last page read (the next page starts strictly after it); nil before the first.
        var cursor: Bytes?
        var exhausted = false

        mutating func next() async -> KeyWrite? {
            while true {
                if position == page.count {
                    if exhausted { return nil }
                    let after = cursor
                    let entries = index.read {
                        $0.entries(in: .all, after: after, reverse: false, max: CopyEntries.pageSize)
                    }
                    exhausted = entries.count < CopyEntries.pageSize
                    guard let last = entries.last else { return nil }
                    cursor = last.key
                    page = entries.map(\.value)
                    position = 0
                }
                let chain = page[position]
                position += 1
                let bound = self.bound
                let visible = chain.state.withLock { state in
                    switch bound {
                    case .snapshot(let snapshot): state.visible(at: snapshot)
                    case .newestPublished(let oracle): state.visible(at: oracle.latest())
                    }
                }
                if let visible, let value = visible.value {
                    return KeyWrite(key: chain.key.bytes, value: value.bytes, version: visible.commitTS)
                }
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(index: index, bound: bound) }
}
