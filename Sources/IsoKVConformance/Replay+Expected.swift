import IsoKVCore

// The expected table: one pure function of (replay, level, capabilities). DESIGN.md prints it for the embedded
// engine and for a backend that runs read uncommitted as read committed, and lists every cell that depends on a
// capability; a test checks that those tables are what this function gives.

extension Replay {
    /// What this replay must end with at `level` on a backend with `capabilities`, or why it is not run there.
    /// A pure function: the same arguments give the same answer on every machine and in every run.
    ///
    /// ```swift
    /// Replay.lostUpdate.expectedOutcome(at: .snapshot, on: caps)
    /// // .verdict(.preventedByError(.serializationFailure, .t2, afterWaiting: false))
    /// ```
    public func expectedOutcome(at level: IsolationLevel, on capabilities: BackendCapabilities) -> ExpectedOutcome {
        guard levels.contains(level) else {
            return .notRun(reason: "applies at \(levels.map(\.rawValue).joined(separator: ", ")) only")
        }
        if let missing = requirements.first(where: { !capabilities.satisfies($0) }) {
            return .notRun(reason: missing.description)
        }
        return .verdict(expectedVerdict(at: level, on: capabilities))
    }

    private func expectedVerdict(at level: IsolationLevel, on capabilities: BackendCapabilities) -> Verdict {
        // Read uncommitted with true dirty reads; on other backends it is read committed under another name.
        let dirtyReads = level == .readUncommitted && capabilities.readUncommitted == .dirtyReads
        // One snapshot per transaction, first updater wins (`.snapshot` and `.serializable`).
        let transactionSnapshot = level.hasTransactionSnapshot
        // Serializable that is serializable (SSI), not snapshot isolation under that name.
        let ssi = level == .serializable && capabilities.serializable == .serializableSnapshotIsolation
        let firstUpdaterWinsAfterWait = Verdict.preventedByError(.serializationFailure, .t2, afterWaiting: true)
        let firstUpdaterWins = Verdict.preventedByError(.serializationFailure, .t2, afterWaiting: false)
        let closingRequesterIsVictim = capabilities.deadlockVictim == .requesterClosingCycle

        switch self {
        // Every write takes the row's exclusive lock until the writer ends: the second writer waits, at every level.
        // Once the holder commits, a transaction snapshot cannot write over a change it does not see.
        case .dirtyWrite:
            return transactionSnapshot ? firstUpdaterWinsAfterWait : .preventedByWaiting(.t2)
        case .dirtyWriteRolledBack, .dirtyWriteSavepoint:
            return .preventedByWaiting(.t2)
        // Uncommitted writes are visible only to true dirty reads.
        case .dirtyRead, .abortedRead:
            return dirtyReads ? .occurred : .preventedBySnapshot
        case .lostUpdate:
            return transactionSnapshot ? firstUpdaterWins : .occurred
        // With true dirty reads T2 reads T1's uncommitted 1 before it waits, so T1's increment survives (by luck:
        // had T1 rolled back, T2 would have written a value computed from a write that never committed).
        case .lostUpdateAfterWait:
            if transactionSnapshot { return firstUpdaterWinsAfterWait }
            return dirtyReads ? .preventedByWaiting(.t2) : .occurred
        case .nonRepeatableRead, .readSkew, .phantom:
            return transactionSnapshot ? .preventedBySnapshot : .occurred
        // Snapshot isolation allows all three; SSI fails T2, the pivot of the dangerous structure (the transaction
        // that reads what a concurrent one writes and writes what another reads), which is also the last to act.
        case .writeSkew, .predicateWriteSkew, .readOnlyAnomaly:
            return ssi ? firstUpdaterWins : .occurred
        // A deferrable read-only T3 waits until T2 ends, then reads a safe snapshot: nobody fails.
        case .readOnlyAnomalyDeferrable:
            return ssi ? .preventedByWaiting(.t3) : .occurred
        case .shareLocks:
            return .preventedByWaiting(.t3)
        case .noWait:
            return .preventedByError(.lockNotAvailable, .t2, afterWaiting: false)
        case .skipLocked:
            return .skippedLockedRows
        case .lockTimeout:
            return .preventedByError(.lockNotAvailable, .t2, afterWaiting: true)
        // The requester closing the cycle fails at once; with a deadlock timeout, the transaction that started
        // waiting first finds the cycle first and fails, after its wait.
        case .deadlockOfTwo:
            return closingRequesterIsVictim
                ? .preventedByError(.deadlockDetected, .t2, afterWaiting: false)
                : .preventedByError(.deadlockDetected, .t1, afterWaiting: true)
        case .deadlockOfThree:
            return closingRequesterIsVictim
                ? .preventedByError(.deadlockDetected, .t3, afterWaiting: false)
                : .preventedByError(.deadlockDetected, .t2, afterWaiting: true)
        case .upgradeDeadlock:
            return closingRequesterIsVictim
                ? .preventedByError(.deadlockDetected, .t2, afterWaiting: false)
                : .preventedByError(.deadlockDetected, .t1, afterWaiting: true)
        }
    }
}
