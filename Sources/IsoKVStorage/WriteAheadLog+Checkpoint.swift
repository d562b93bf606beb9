#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension WriteAheadLog {
    /// A checkpoint is written in chunks of this many bytes (one buffer, reserved once).
    static let checkpointChunkBytes = 256 << 10

    /// Writes a checkpoint that replaces every record with sequence ≤ `sequence`, then deletes the WAL segments it
    /// covers.
    ///
    /// `entries` is a copy of the committed state taken at or after commit `sequence`, key by key: each key's
    /// newest committed write as of the moment it was read, a moment no earlier than `sequence` (a *fuzzy* copy, as
    /// PostgreSQL's checkpoints are); an MVCC snapshot at `sequence` is the special case where every key was read
    /// at the same moment. Every entry must come from a commit the engine has already enqueued in this log.
    /// Recovery applies the entries and then every record with sequence > `sequence` in log order, which converges
    /// to the state at the end of the log: a key written after its copy was taken is written again by those
    /// records, and a key they do not write was copied at its value at `sequence` or at a later write of it whose
    /// record they contain (DESIGN.md "Checkpoints"). Appends continue while it runs. Protocol:
    /// 1. write header, entries and a footer (entry count, sequence) to `checkpoint.ikv.tmp`, in 1 MiB chunks on
    ///    the log's I/O queue;
    /// 2. make every record enqueued so far as durable as the checkpoint will be (``flushForCheckpoint()``): an
    ///    entry copied from a commit after `sequence` must not outlive that commit's record, or a crash could
    ///    recover half of a transaction;
    /// 3. fsync the temp file;
    /// 4. rename it over `checkpoint.ikv` (atomic), fsync the directory;
    /// 5. delete, oldest first, each closed segment whose records all have sequence ≤ `sequence`, fsyncing the
    ///    directory after each (so segment numbers stay contiguous whatever survives a crash).
    /// A failure before step 4 leaves the previous checkpoint in place (the temp file is removed); the log itself
    /// stays usable unless step 2 found it failed. Throws ``StorageError/checkpointInProgress`` if another
    /// checkpoint runs.
    ///
    /// ```swift
    /// try await log.checkpoint(sequence: startedAt, entries: AsyncEntries(copy))
    /// ```
    public func checkpoint<Entries: AsyncSequence>(sequence: UInt64, entries: Entries) async throws
    where Entries.Element == KeyWrite {
        let refusal = shared.withLock { s -> StorageError? in
            if let failure = s.failure { return failure }
            if s.closing { return .closed }
            if s.checkpointRunning { return .checkpointInProgress }
            s.checkpointRunning = true
            return nil
        }
        if let refusal { throw refusal }
        defer { shared.withLock { $0.checkpointRunning = false } }

        let tempPath = DataDirectory.join(directory, DataDirectory.checkpointTempName)
        let finalPath = DataDirectory.join(directory, DataDirectory.checkpointName)
        let faults = options.faults
        let fd = try await blocking { () throws(StorageError) in
            try FileIO.open(tempPath, O_WRONLY | O_CREAT | O_TRUNC)
        }
        // The descriptor is closed exactly once (a second close could hit a reused number: another log's segment).
        var fdOpen = true
        do {
            var chunk = WALFormat.checkpointHeader(sequence: sequence)
            // Room for the frame that crosses the threshold (a larger entry grows the buffer, for this checkpoint).
            chunk.reserveCapacity(Self.checkpointChunkBytes + 64 << 10)
            var count: UInt64 = 0
            for try await entry in entries {
                try WALFormat.checkKey(entry.key)
                try WALFormat.appendFrame(to: &chunk) { WALFormat.encodeCheckpointEntry(entry, into: &$0) }
                count += 1
                if chunk.count >= Self.checkpointChunkBytes {
                    // Written before it is emptied, so that the one buffer is reused: emptying it while the write
                    // still held a copy made `removeAll` allocate a new buffer per chunk.
                    let full = chunk
                    try await blocking { () throws(StorageError) in try Self.write(fd, full, tempPath, faults) }
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            try WALFormat.appendFrame(to: &chunk) {
                WALFormat.encodeCheckpointFooter(entries: count, sequence: sequence, into: &$0)
            }
            try await flushForCheckpoint()
            let last = chunk
            let directory = self.directory
            let sync = options.durability != .unsafeNoSync
            try await blocking { () throws(StorageError) in
                try Self.write(fd, last, tempPath, faults)
                if sync { try FileIO.datasync(fd, path: tempPath, point: .checkpointSync, faults: faults) }
            }
            fdOpen = false
            try await blocking { () throws(StorageError) in
                Glibc.close(fd)
                try FileIO.rename(tempPath, finalPath, faults: faults)
                if sync { try FileIO.syncDirectory(directory, faults: faults) }
            }
        } catch {
            let closeFD = fdOpen
            await WriteAheadLog.runBlocking(on: io) {
                if closeFD { Glibc.close(fd) }
                _ = unlink(tempPath)  // ENOENT once renamed: harmless
            }
            throw error
        }
        try await deleteSegments(coveredBy: sequence)
        shared.withLock { $0.stats.checkpoints += 1 }
    }

    /// Step 2 of ``checkpoint(sequence:entries:)``: waits until every record enqueued before this call is written
    /// (in every mode, `.unsafeNoSync` included, so that a process crash cannot keep a checkpoint entry and lose
    /// its record) and, in `.fsync` and `.buffered`, on stable storage (`.fsync` acknowledges only synced records;
    /// `.buffered` syncs a segment at rotation, so the segment holding the tail is synced here). Throws the log's
    /// failure if it failed. A failed fdatasync here fails the log as one of the flusher's would (§6, the fsyncgate
    /// rule: the kernel may have dropped the unsynced pages, so no later sync can vouch for them): every later
    /// append throws, and the flusher, woken if it sleeps, fails its waiters and exits. (Failing to open the
    /// segment only fails the checkpoint.)
    func flushForCheckpoint() async throws {
        let end = shared.withLock { $0.enqueuedLSN }
        try await waitDurable(DurabilityTicket(end: end, overQueueLimit: true), force: true)
        guard options.durability == .buffered else { return }
        // Records up to `end` are in the current segment or in closed ones (synced when they were closed). If the
        // flusher rotates after this load, the segment synced here is one it synced already: harmless.
        let number = shared.withLock { $0.currentSegment }
        let path = DataDirectory.join(directory, DataDirectory.segmentName(number))
        let faults = options.faults
        let fd = try await blocking { () throws(StorageError) in try FileIO.open(path, O_RDONLY) }
        do {
            try await blocking { () throws(StorageError) in
                defer { Glibc.close(fd) }
                try FileIO.datasync(fd, path: path, point: .walSync, faults: faults)
            }
        } catch {
            let wakeFlusher = shared.withLock { s -> Bool in
                if s.failure == nil { s.failure = .logFailed(cause: error.description) }
                defer { s.flusherSleeping = false }
                return s.flusherSleeping
            }
            if wakeFlusher { wake.signal() }
            throw error
        }
        shared.withLock { $0.stats.syncs += 1 }
    }

    /// Step 5 of ``checkpoint(sequence:entries:)``.
    func deleteSegments(coveredBy sequence: UInt64) async throws {
        let victims = shared.withLock { s -> [ClosedSegment] in
            let n = s.closedSegments.prefix { $0.maxSequence <= sequence }.count
            defer { s.closedSegments.removeFirst(n) }
            return Array(s.closedSegments.prefix(n))
        }
        guard !victims.isEmpty else { return }
        let directory = self.directory
        let faults = options.faults
        let sync = options.durability != .unsafeNoSync
        let deleted = await WriteAheadLog.runBlocking(on: io) { () -> Result<Int, StorageError> in
            for (i, segment) in victims.enumerated() {
                do throws(StorageError) {
                    try FileIO.unlink(DataDirectory.join(directory, DataDirectory.segmentName(segment.number)))
                    if sync { try FileIO.syncDirectory(directory, faults: faults) }
                } catch {
                    return .failure(error)  // `i` segments deleted
                }
                _ = i
            }
            return .success(victims.count)
        }
        switch deleted {
        case .success(let n):
            shared.withLock { $0.stats.segmentsDeleted += UInt64(n) }
        case .failure(let error):
            // Put back what may still exist, so a later checkpoint retries it (recovery copes either way).
            shared.withLock { s in
                let existing = Set(s.closedSegments.map(\.number))
                s.closedSegments.insert(contentsOf: victims.filter { !existing.contains($0.number) }, at: 0)
            }
            throw error
        }
    }

    static func write(_ fd: Int32, _ bytes: [UInt8], _ path: String, _ faults: FaultHook?) throws(StorageError) {
        try bytes.withRawBytes { buf throws(StorageError) in
            try FileIO.writeAll(fd, buf.baseAddress!, buf.count, path: path, point: .checkpointWrite, faults: faults)
        }
    }

    /// Runs a throwing blocking call on the I/O queue.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(StorageError) -> T) async throws(StorageError) -> T
    {
        let result = await WriteAheadLog.runBlocking(on: io) { () -> Result<T, StorageError> in
            Result { () throws(StorageError) -> T in try body() }
        }
        return try result.get()
    }
}
