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

    /// Registers a snapshot of the newest published commit (so GC keeps every version it reads) and lists the
    /// chains that may hold a version visible to it: for a consistent copy (backup). Every commit ≤ the snapshot
    /// was installed in a chain that was in the directory before the registration, and GC cannot retire a chain
    /// holding a version the snapshot sees, so the list (taken after the registration) covers the snapshot.
    func registerSnapshotForCopy() -> (UInt64, [KeyChain]) {
        let snapshot = oracle.registerSnapshot(stripe: 0)
        return (snapshot, listChains())
    }

    func releaseSnapshotForCopy(_ snapshot: UInt64) {
        let advanced = oracle.unregisterSnapshot(snapshot, stripe: 0)
        gc.afterTransaction(touched: [], horizonAdvanced: advanced, in: self)
    }

    /// The start of a fuzzy copy (``CopyEntries/Bound/newestPublished(_:)``): the newest published commit, then the
    /// chains that may hold a key's newest published version from then on. A commit ≤ the returned sequence was
    /// installed in a chain stored in the directory before that commit was published, so before the listing
    /// (which comes after the load); a chain retired later holds only a deletion, and a chain created later holds
    /// only later commits, which the log replays.
    func chainsForFuzzyCopy() -> (UInt64, [KeyChain]) {
        let start = oracle.latest()
        return (start, listChains())
    }

    private func listChains() -> [KeyChain] {
        var chains: [KeyChain] = []
        directory.forEach { _, chain in
            chains.append(chain)
            return true
        }
        return chains
    }
}

/// The committed state, read chain by chain as the checkpoint writer pulls it (no copy of the values is made up
/// front). Tombstones and keys without a version in bounds are skipped.
struct CopyEntries: AsyncSequence, Sendable {
    typealias Element = KeyWrite

    /// Which version of each chain is copied.
    enum Bound: Sendable {
        /// The version visible at a registered snapshot: a consistent copy (backup).
        case snapshot(UInt64)
        /// The newest published version when the writer reaches the chain: a fuzzy copy (checkpoints). No
        /// snapshot is registered, so garbage collection keeps running (a snapshot pinned for the whole copy kept
        /// every version written meanwhile — a third more memory at the end of a long update-heavy run).
        /// `published` is loaded inside the chain's lock: garbage collection prunes a chain only under that lock,
        /// at a horizon that is at most `published` at that moment, so the newest version at or below the value
        /// loaded afterwards is still in the list. Every version read is published, hence its commit record is
        /// enqueued in the log (and durable in `.fsync`), which `WriteAheadLog.checkpoint` relies on.
        case newestPublished(Oracle)
    }

    let chains: [KeyChain]
    let bound: Bound

    struct AsyncIterator: AsyncIteratorProtocol {
        let chains: [KeyChain]
        let bound: Bound
        var index = 0

        mutating func next() async -> KeyWrite? {
            while index < chains.count {
                let chain = chains[index]
                index += 1
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
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chains: chains, bound: bound) }
}
