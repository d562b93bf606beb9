import IsoKVCore

extension ReplayContext {
    /// Runs `replay`'s interleaving (one switch, so that adding a replay without a body does not compile).
    func run(_ replay: Replay) async throws -> Finding {
        switch replay {
        case .dirtyWrite: return try await dirtyWrite(.commit)
        case .dirtyWriteRolledBack: return try await dirtyWrite(.rollback)
        case .dirtyWriteSavepoint: return try await dirtyWrite(.rollbackToSavepoint)
        case .dirtyRead: return try await dirtyRead()
        case .abortedRead: return try await abortedRead()
        case .lostUpdate: return try await lostUpdate()
        case .lostUpdateAfterWait: return try await lostUpdateAfterWait()
        case .nonRepeatableRead: return try await nonRepeatableRead()
        case .readSkew: return try await readSkew()
        case .phantom: return try await phantom()
        case .writeSkew: return try await writeSkew()
        case .predicateWriteSkew: return try await predicateWriteSkew()
        case .readOnlyAnomaly: return try await readOnlyAnomaly(deferrableReader: false)
        case .readOnlyAnomalyDeferrable: return try await readOnlyAnomaly(deferrableReader: true)
        case .shareLocks: return try await shareLocks()
        case .noWait: return try await noWait()
        case .skipLocked: return try await skipLocked()
        case .lockTimeout: return try await lockTimeout()
        case .deadlockOfTwo: return try await deadlockOfTwo()
        case .deadlockOfThree: return try await deadlockOfThree()
        case .upgradeDeadlock: return try await upgradeDeadlock()
        }
    }
}
