import IsoKVCore
import IsoKVStorage

extension Database {
    /// Writes a checkpoint now, from a registered snapshot (readers and writers keep running), then deletes the
    /// WAL segments it covers. Throws `IsoKVError`: `55000` if the background checkpoint is running,
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
    /// chains that may hold a version visible to it. Every commit ≤ the snapshot was installed in a chain that was
    /// in the directory before the registration, and GC cannot retire a chain holding a version the snapshot
    /// sees, so the list (taken after the registration) covers the snapshot.
    func registerSnapshotForCopy() -> (UInt64, [KeyChain]) {
        let snapshot = oracle.registerSnapshot(stripe: 0)
        var chains: [KeyChain] = []
        directory.forEach { _, chain in
            chains.append(chain)
            return true
        }
        return (snapshot, chains)
    }

    func releaseSnapshotForCopy(_ snapshot: UInt64) {
        let advanced = oracle.unregisterSnapshot(snapshot, stripe: 0)
        gc.afterTransaction(touched: [], horizonAdvanced: advanced, in: self)
    }
}

/// The committed state at a registered snapshot, read chain by chain as the checkpoint writer pulls it (no copy
/// of the values is made up front). Tombstones and keys without a visible version are skipped.
struct SnapshotEntries: AsyncSequence, Sendable {
    typealias Element = KeyWrite
    let chains: [KeyChain]
    let snapshot: UInt64

    struct AsyncIterator: AsyncIteratorProtocol {
        let chains: [KeyChain]
        let snapshot: UInt64
        var index = 0

        mutating func next() async -> KeyWrite? {
            while index < chains.count {
                let chain = chains[index]
                index += 1
                let visible = chain.state.withLock { $0.visible(at: snapshot) }
                if let visible, let value = visible.value {
                    return KeyWrite(key: chain.key.bytes, value: value.bytes, version: visible.commitTS)
                }
            }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chains: chains, snapshot: snapshot) }
}
