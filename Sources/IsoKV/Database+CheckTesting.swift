import IsoKVCore

/// Test-only: one way to break each invariant ``Database/check(_:)`` verifies, so that a test can show the checker
/// reports exactly that finding. Applied by ``Database/_testingCorrupt(_:)``. Never use outside tests: the
/// database is inconsistent afterwards and may misbehave (that is the point).
@_spi(Testing)
public enum TestingCorruption: Sendable {
    /// Swaps the two newest versions of the key's chain (needs two). → `versionOrder`
    case reorderVersions(key: Bytes)
    /// Renumbers the newest version to ten past the last commit number. → `versionAfterLastCommit`
    case moveNewestVersionPastLastCommit(key: Bytes)
    /// Takes the next commit number without publishing it (`last += 1`) and renumbers the newest version to it,
    /// as a durable commit does while it waits for its fsync — but nobody holds the row's lock. On a durable
    /// database (in memory, `published == last` is itself an invariant). → `unpublishedVersionUnlocked`
    case unpublishNewestVersion(key: Bytes)
    /// Clears the exclusive holder of a row with a pending write. → `pendingWriteWithoutLock`
    case dropExclusiveKeepingPending(key: Bytes)
    /// Adds the exclusive holder to the shared holders too. → `conflictingLockHolders`
    case addExclusiveHolderToShared(key: Bytes)
    /// Clears the holders of a row that has waiters, without granting them. → `grantableWaiter`
    case releaseWithoutGranting(key: Bytes)
    /// Marks the key's (non-empty) chain retired. → `retiredChainNotEmpty` (and `retiredChainReachable`)
    case markRetired(key: Bytes)
    /// Stores a new, empty, retired chain for an absent key in the directory and the scan index.
    /// → `retiredChainReachable`
    case insertRetiredChain(key: Bytes)
    /// Stores `published = last + 1`. → `oracleClock`
    case publishAheadOfLastCommit
    /// Registers a snapshot five commits above `published` (stripe 0). → `snapshotRegistry`
    case registerSnapshotAheadOfPublished
    /// Registers a snapshot of `published` that no transaction owns. → `snapshotWithoutTransaction`
    case registerSnapshotWithoutTransaction
    /// Removes the key from the scan index only. → `keyNotIndexed`
    case removeFromIndex(key: Bytes)
    /// Removes the key's chain from the directory only. → `indexedChainNotInDirectory`
    case removeFromDirectory(key: Bytes)
    /// Removes a live transaction from the registry of live transactions, as if it had ended without releasing
    /// what it holds. → `lockOfEndedTransaction`, `ssiRecordOfEndedTransaction`
    case forgetTransaction(TransactionID)
    /// Sets `prepared` on an active read-write serializable record without listing it among the prepared ones,
    /// as a durable commit that lost track of it would. → `ssiRecordInconsistent`
    case markPreparedUnlisted(TransactionID)
    /// Removes a waiting transaction's entry from the wait-for graph. → `waitGraphMismatch`
    case forgetWait(TransactionID)
    /// Removes the key's chain from the GC backlog. → `versionsNotFiledForGC`
    case removeFromGCBacklog(key: Bytes)
    /// Removes the writer's rw-conflict in from the reader, keeping the reader's conflict out. → `ssiEdgeAsymmetric`
    case dropConflictIn(reader: TransactionID, writer: TransactionID)
    /// Sets a serializable transaction's `doomed` flag without a reason. → `ssiRecordInconsistent`
    case doomWithoutReason(TransactionID)
    /// Adds a whole-keyspace range SIREAD lock owned by a transaction without a record. → `ssiRangeLockOrphaned`
    case addRangeLock(owner: TransactionID)
    /// Adds a point SIREAD lock owned by a transaction without a record. → `ssiPointLockOrphaned`
    case addPointLock(key: Bytes, owner: TransactionID)
    /// Removes an active read-write serializable transaction from `activeReadWrite`. → `ssiActiveSetMismatch`
    case removeFromActiveReadWrite(TransactionID)
    /// Takes a lazy read-only snapshot slot that no transaction owns. → `ssiActiveSetMismatch`
    case claimLazySlotWithoutTransaction
}

@_spi(Testing)
extension Database {
    /// Test-only: breaks one invariant on purpose (see ``TestingCorruption``), under the lock that guards it.
    /// Traps if the precondition a case names (a key with a chain, two versions, a waiter…) does not hold.
    public func _testingCorrupt(_ corruption: TestingCorruption) {
        func chain(_ key: Bytes) -> KeyChain {
            guard let c = directory.load(key) else { preconditionFailure("no chain for \(key)") }
            return c
        }
        switch corruption {
        case .reorderVersions(let key):
            let c = chain(key)
            var versions = c.state.withLock { $0.versions }
            precondition(versions.count >= 2, "needs two versions")
            versions.swapAt(versions.count - 1, versions.count - 2)
            c.replaceVersionsForTesting(versions, reclaimer: index.reclaimer)
        case .moveNewestVersionPastLastCommit(let key):
            let last = oracle.commitLock.withLock { $0 }
            let c = chain(key)
            var versions = c.state.withLock { $0.versions }
            precondition(!versions.isEmpty, "needs a version")
            versions[versions.count - 1].commitTS = last + 10
            c.replaceVersionsForTesting(versions, reclaimer: index.reclaimer)
        case .unpublishNewestVersion(let key):
            let ts = oracle.commitLock.withLock { last in
                last += 1; return last
            }
            let c = chain(key)
            var versions = c.state.withLock { $0.versions }
            precondition(!versions.isEmpty, "needs a version")
            versions[versions.count - 1].commitTS = ts
            c.replaceVersionsForTesting(versions, reclaimer: index.reclaimer)
        case .dropExclusiveKeepingPending(let key):
            chain(key).state.withLock { s in
                precondition(s.pending != nil, "needs a pending write")
                s.exclusive = nil
            }
        case .addExclusiveHolderToShared(let key):
            chain(key).state.withLock { s in
                guard let x = s.exclusive else { preconditionFailure("needs an exclusive holder") }
                s.shared.append(x)
            }
        case .releaseWithoutGranting(let key):
            chain(key).state.withLock { s in
                precondition(!s.waiters.isEmpty && s.pending == nil, "needs waiters and no pending write")
                s.exclusive = nil
                s.shared = []
            }
        case .markRetired(let key):
            chain(key).state.withLock { $0.retired = true }
        case .insertRetiredChain(let key):
            let c = KeyChain.make(key: key)
            c.state.withLock { $0.retired = true }
            precondition(!directory.loadOrStore(key, c).loaded, "the key already has a chain")
            index.withWriterLock { $0.insert(key, c) }
        case .publishAheadOfLastCommit:
            oracle.commitLock.withLock { last in oracle.published.store(last + 1, ordering: .releasing) }
        case .registerSnapshotAheadOfPublished:
            _ = oracle.snapshots[0].withLock { registry in
                oracle.stripeRegistrations.add(1, ordering: .sequentiallyConsistent)
                return registry.registerLocked(oracle.latest() + 5)
            }
        case .registerSnapshotWithoutTransaction:
            _ = oracle.registerSnapshot(stripe: 0)
        case .removeFromIndex(let key):
            index.withWriterLock { $0.remove(key) }
        case .removeFromDirectory(let key):
            directory.remove(chain(key))
        case .forgetTransaction(let id):
            live.forget(id.rawValue)
        case .forgetWait(let id):
            lockManager.graph.withLock { g in
                precondition(g.waitingOn[id.rawValue] != nil, "tx\(id.rawValue) is not waiting")
                g.waitingOn[id.rawValue] = nil
            }
        case .removeFromGCBacklog(let key):
            let c = chain(key)
            gc.backlog.withLock { b in
                precondition(b[ObjectIdentifier(c)] != nil, "the chain is not in the backlog")
                b[ObjectIdentifier(c)] = nil
            }
        case .dropConflictIn(let reader, let writer):
            ssi.withCaughtUpStateForTesting { s in
                precondition(s.xacts[writer.rawValue]?.inConflicts[reader.rawValue] != nil, "no such rw-conflict")
                s.xacts[writer.rawValue]!.inConflicts[reader.rawValue] = nil
            }
        case .doomWithoutReason(let id):
            ssi.withCaughtUpStateForTesting { s in
                guard let r = s.xacts[id.rawValue] else { preconditionFailure("tx\(id.rawValue) has no SSI record") }
                r.doomed.store(true, ordering: .releasing)
            }
        case .addRangeLock(let owner):
            ssi.withCaughtUpStateForTesting { s in
                precondition(s.xacts[owner.rawValue] == nil, "tx\(owner.rawValue) has an SSI record")
                s.nextRangeID += 1
                s.ranges.append(RangeLock(owner: owner.rawValue, id: s.nextRangeID, range: .all))
            }
        case .addPointLock(let key, let owner):
            ssi.pointLocks.add(key, owner: owner.rawValue)
        case .removeFromActiveReadWrite(let id):
            ssi.withCaughtUpStateForTesting { s in
                precondition(
                    s.activeReadWrite.contains(id.rawValue), "tx\(id.rawValue) is not an active read-write one")
                s.leaveActiveReadWriteLocked(id.rawValue)  // the count mirror follows: only the set is wrong
            }
        case .markPreparedUnlisted(let id):
            ssi.withCaughtUpStateForTesting { s in
                guard let r = s.xacts[id.rawValue], !r.readOnly, !r.isCommitted else {
                    preconditionFailure("tx\(id.rawValue) has no active read-write SSI record")
                }
                r.prepared = true
            }
        case .claimLazySlotWithoutTransaction:
            _ = ssi.lazySlots.claim(oracle.latest(), hint: 0)
        }
    }
}
