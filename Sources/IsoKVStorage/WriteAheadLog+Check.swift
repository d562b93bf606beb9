extension WriteAheadLog {
    /// Verifies a data directory without modifying it (the engine of `isokv check`): the checkpoint entirely, then
    /// every segment record by record.
    ///
    /// Returns what an open would recover; `truncatedTail` says what an open *would* cut off (a torn tail after
    /// a crash is normal, not corruption). Throws the same typed errors as ``open(directory:options:)`` for
    /// corruption, naming the file and offset of the first problem. Does not take the directory lock (it may run
    /// beside a live store, and then may see the tail of a batch being written as torn).
    ///
    /// ```swift
    /// let state = try WriteAheadLog.check(directory: "data")
    /// print(state.commits.count, state.truncatedTail as Any)
    /// ```
    public static func check(directory: String) throws(StorageError) -> RecoveredState {
        try Recovery.scan(directory: directory, repair: false, faults: nil)
    }
}
