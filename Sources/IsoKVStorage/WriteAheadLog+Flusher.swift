import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What only the flusher thread touches: the current segment's descriptor and size.
///
/// `@unchecked Sendable`: created by `open` before the thread starts, then used only by the flusher thread until
/// it exits (it closes the descriptor itself). No other thread reads or writes it, so no lock is needed.
final class FlusherContext: @unchecked Sendable {
    let directory: String
    let options: WALOptions
    /// Descriptor of the current segment (O_WRONLY|O_APPEND), or -1 after close.
    var fd: Int32
    var number: UInt64
    var path: String
    /// Bytes in the current segment, header included.
    var bytes: Int64
    /// Highest sequence written to the current segment.
    var maxSequence: UInt64 = 0

    private init(directory: String, options: WALOptions, fd: Int32, number: UInt64, path: String) {
        self.directory = directory
        self.options = options
        self.fd = fd
        self.number = number
        self.path = path
        self.bytes = Int64(WALFormat.segmentHeaderBytes)
    }

    /// Creates segment `number`: header written, then (unless `.unsafeNoSync`) fdatasync of the file and fsync of
    /// the directory, so that no record is acknowledged in a segment whose directory entry could vanish.
    static func create(
        directory: String, number: UInt64, previousBytes: Int64,
        options: WALOptions
    ) throws(StorageError) -> FlusherContext {
        let path = DataDirectory.join(directory, DataDirectory.segmentName(number))
        let fd = try FileIO.open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND)
        do throws(StorageError) {
            let header = WALFormat.segmentHeader(number: number, previousBytes: previousBytes)
            try header.withRawBytes { buf throws(StorageError) in
                try FileIO.writeAll(
                    fd, buf.baseAddress!, buf.count, path: path, point: .segmentRotate,
                    faults: options.faults)
            }
            if options.durability != .unsafeNoSync {
                try FileIO.datasync(fd, path: path, point: .walSync, faults: options.faults)
                try FileIO.syncDirectory(directory, faults: options.faults)
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return FlusherContext(directory: directory, options: options, fd: fd, number: number, path: path)
    }
}

extension WriteAheadLog {
    func startFlusher(_ context: FlusherContext) {
        notifier.start()
        let thread = Thread { [self] in self.runFlusher(context) }
        thread.name = "isokv-wal-flusher"
        thread.qualityOfService = .userInitiated
        thread.start()
    }

    /// The flusher loop (its own thread, never a cooperative one).
    ///
    /// 1. Under the lock, swap the whole queue for the emptied previous batch buffer (or park if there is none).
    /// 2. Rotate if the segment is full (sync and close it, create the next).
    /// 3. write(2) the batch in one call; in `.fsync` mode fdatasync it.
    /// 4. Under the lock, advance `writtenLSN`/`syncedLSN` and take every waiter now acknowledged.
    /// 5. Resume those waiters (outside the lock), go to 1.
    /// Any failure: set `failure`, fail every waiter, exit — the log never writes again.
    func runFlusher(_ context: FlusherContext) {
        let mode = options.durability
        let faults = options.faults
        var batch: [UInt8] = []
        var exitError: StorageError?
        // Records the last heavy batch acknowledged: the next batch waits (at most `gatherNanoseconds`) for as many
        // to be queued, so that the committers just resumed join it instead of the one after (see DESIGN.md §3).
        var gather = 0
        var gatherTimeout: UInt64 = 0
        loop: while true {
            var batchMaxSequence: UInt64 = 0
            var batchEnd: UInt64 = 0
            var syncNanoseconds: UInt64 = 0
            var sleep = false
            var exit = false
            var gathering = false
            shared.withLock { s in
                if s.failure != nil { exit = true; return }
                if s.queue.isEmpty {
                    if s.closing { exit = true } else { s.flusherSleeping = true; sleep = true }
                    return
                }
                if gather > 0 && s.queuedRecords < gather && !s.closing {
                    s.gatherTarget = gather
                    gathering = true
                    return
                }
                s.gatherTarget = 0
                s.queuedRecords = 0
                swap(&batch, &s.queue)
                batchMaxSequence = s.queueMaxSequence
                s.queueMaxSequence = 0
                batchEnd = s.enqueuedLSN
            }
            if exit { break loop }
            if sleep {
                wake.wait()
                continue
            }
            if gathering {
                // Woken early by the enqueuer that reaches the target; then take whatever is queued.
                wake.wait(nanoseconds: gatherTimeout)
                gather = 0
                continue
            }
            do throws(StorageError) {
                if context.bytes >= Int64(options.segmentBytes) { try rotate(context) }
                try batch.withRawBytes { buf throws(StorageError) in
                    try FileIO.writeAll(
                        context.fd, buf.baseAddress!, buf.count, path: context.path,
                        point: .walWrite, faults: faults)
                }
                if mode == .fsync {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try FileIO.datasync(context.fd, path: context.path, point: .walSync, faults: faults)
                    syncNanoseconds = DispatchTime.now().uptimeNanoseconds - t0
                }
            } catch {
                exitError = error
                break loop
            }
            context.bytes += Int64(batch.count)
            context.maxSequence = max(context.maxSequence, batchMaxSequence)
            let written = UInt64(batch.count)
            // Keep the buffer for reuse unless a burst made it huge.
            if batch.capacity > 4 * options.maxQueuedBytes {
                batch = []
            } else {
                batch.removeAll(keepingCapacity: true)
            }
            let ready = shared.withLock { s -> [Waiter] in
                s.writtenLSN = batchEnd
                if mode == .fsync {
                    s.syncedLSN = batchEnd
                    s.stats.syncs += 1
                    s.stats.batchSyncNanoseconds += syncNanoseconds
                }
                s.stats.batches += 1
                s.stats.bytesWritten += written
                s.currentSegmentBytes = context.bytes
                return s.takeReadyWaitersLocked(mode)
            }
            // Gather only when syncs are slow enough for it to pay: wait at most half the last sync.
            gatherTimeout = min(Self.gatherNanoseconds, syncNanoseconds / 2)
            gather =
                mode == .fsync && ready.count > Notifier.directResumeLimit && gatherTimeout >= 5_000 ? ready.count : 0
            if ready.count <= Notifier.directResumeLimit {
                for w in ready { w.continuation.resume() }
            } else {
                notifier.post(ready)
            }
        }
        // Clean exit: make the tail durable as the mode promises for close.
        if exitError == nil && mode == .buffered {
            do throws(StorageError) {
                try FileIO.datasync(context.fd, path: context.path, point: .walSync, faults: faults)
            } catch {
                exitError = error
            }
        }
        Glibc.close(context.fd)
        context.fd = -1
        let (failed, acknowledged, exitContinuation) = shared.withLock {
            s -> ([Waiter], [Waiter], PlainContinuation?) in
            if let exitError, s.failure == nil { s.failure = .logFailed(cause: exitError.description) }
            s.flusherExited = true
            if mode == .buffered && exitError == nil { s.stats.syncs += 1 }
            var waiters = s.waiters
            s.waiters = []
            // `.unsafeNoSync` (waits forced by back-pressure): a record below one already acknowledged stays
            // acknowledged (`LogState.unsafeAckedLSN`).
            var acknowledged: [Waiter] = []
            if mode == .unsafeNoSync {
                waiters.removeAll { w in
                    guard s.acknowledgeUnsafeLocked(w.end) else { return false }
                    acknowledged.append(w)
                    return true
                }
            }
            return (waiters, acknowledged, s.exitContinuation)
        }
        let error = failure ?? .closed
        for w in acknowledged { w.continuation.resume() }
        for w in failed { w.continuation.resume(throwing: error) }
        // The notifier resumes what it still holds, then `close()`.
        notifier.stop(then: exitContinuation)
    }

    /// Longest wait for the committers of the previous batch to re-enqueue before syncing the next one (also
    /// bounded by half the previous fdatasync, and skipped under 5 µs).
    static let gatherNanoseconds: UInt64 = 50_000

    /// Closes the full segment (synced unless `.unsafeNoSync`) and makes the next one current.
    func rotate(_ context: FlusherContext) throws(StorageError) {
        if let faults = options.faults, let e = faults.failure(at: .segmentRotate) {
            throw .io(operation: "rotate", file: context.path, errno: e)
        }
        if options.durability == .buffered {
            try FileIO.datasync(context.fd, path: context.path, point: .walSync, faults: options.faults)
        }
        let next = try FlusherContext.create(
            directory: directory, number: context.number + 1,
            previousBytes: context.bytes, options: options)
        Glibc.close(context.fd)
        let closed = ClosedSegment(number: context.number, maxSequence: context.maxSequence, bytes: context.bytes)
        let syncs: UInt64 =
            switch options.durability {
            case .fsync: 1
            case .buffered: 2
            case .unsafeNoSync: 0
            }
        context.fd = next.fd
        context.number = next.number
        context.path = next.path
        context.bytes = next.bytes
        context.maxSequence = 0
        next.fd = -1
        shared.withLock { s in
            s.closedSegments.append(closed)
            s.currentSegment = context.number
            s.currentSegmentBytes = context.bytes
            s.stats.segmentsCreated += 1
            s.stats.syncs += syncs
        }
    }
}
