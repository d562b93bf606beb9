import IsoKVCore
import IsoKVSync

/// Seed 004's single writer per key partition: one owner task per partition; a request for counter key `k` goes to
/// partition `fnv1a(k) % partitions` through that partition's `AsyncStream`, and the owner applies what is queued
/// (up to `maxBatch` requests) in one read-committed transaction: per counter key, read it, insert the batch's
/// reaction rows, write counter + their number. Each submitter is resumed with the batch's result.
///
/// Correct only while nothing else writes the counters it owns: it takes no lock; the single-writer discipline is
/// the protection. Not handled: a submitter cancelled while queued still has its request applied; a batch that fails
/// fails every request in it; ``finish()`` must be called once every submitter has returned.
final class PartitionedWriter<Store: KeyValueStore>: Sendable {
    struct Request: Sendable {
        var counter: Bytes
        var reaction: Bytes
        var continuation: CheckedContinuation<Void, any Error>
    }

    /// How many requests of a partition are yielded, or about to be, and not yet taken into a batch. A submitter
    /// adds one *before* it yields, so an owner that reads `q` can take `q` requests: any it has not received yet
    /// is being yielded, and waiting for it is a suspension of the owner, never a blocked thread.
    final class Backlog: Sendable {
        let count = Locked(0)
    }

    struct Partition: Sendable {
        let input: AsyncStream<Request>.Continuation
        let backlog: Backlog
        let owner: Task<Void, Never>
    }

    let partitions: [Partition]
    /// Batches applied, all partitions together.
    let batches = Tally()

    init(store db: Store, partitions count: Int, maxBatch: Int, roundTrip: RoundTrip) {
        precondition(count >= 1 && maxBatch >= 1)
        var partitions: [Partition] = []
        for _ in 0..<count {
            let (stream, input) = AsyncStream<Request>.makeStream()
            let backlog = Backlog()
            let batches = self.batches
            let owner = Task {
                await Self.own(
                    stream, backlog: backlog, db: db, maxBatch: maxBatch, batches: batches, roundTrip: roundTrip)
            }
            partitions.append(Partition(input: input, backlog: backlog, owner: owner))
        }
        self.partitions = partitions
    }

    /// Queues the reaction for the owner of `counter`'s partition and returns once its batch has committed.
    func submit(counter: Bytes, reaction: Bytes) async throws {
        let partition = partitions[Int(Self.fnv1a(counter) % UInt64(partitions.count))]
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            partition.backlog.count.withLock { $0 += 1 }
            let result = partition.input.yield(
                Request(counter: counter, reaction: reaction, continuation: continuation))
            if case .terminated = result {
                partition.backlog.count.withLock { $0 -= 1 }
                continuation.resume(throwing: IsoKVError(.objectNotInPrerequisiteState, "the writer has finished"))
            }
        }
    }

    /// Ends every partition's stream and waits for its owner to apply what was queued.
    func finish() async {
        for partition in partitions { partition.input.finish() }
        for partition in partitions { await partition.owner.value }
    }

    /// The owner loop of one partition: take the first queued request, then as many as the backlog says are queued
    /// (at most `maxBatch` in all), apply them in one transaction, resume their submitters.
    private static func own(
        _ stream: AsyncStream<Request>, backlog: Backlog, db: Store, maxBatch: Int, batches: Tally,
        roundTrip: RoundTrip
    ) async {
        var requests = stream.makeAsyncIterator()
        while let first = await requests.next() {
            var batch = [first]
            let more = backlog.count.withLock { min($0, maxBatch) - 1 }
            for _ in 0..<max(0, more) {
                guard let next = await requests.next() else { break }
                batch.append(next)
            }
            backlog.count.withLock { $0 -= batch.count }
            do {
                try await apply(batch, to: db, roundTrip: roundTrip)
                batches.add(1)
                for request in batch { request.continuation.resume() }
            } catch {
                for request in batch { request.continuation.resume(throwing: error) }
            }
        }
    }

    /// One transaction for the batch: per counter key, its reaction rows and one write of the counter. With a
    /// simulated round trip, the read, the rows (one multi-row insert) and the write pay one each.
    private static func apply(_ batch: [Request], to db: Store, roundTrip: RoundTrip) async throws {
        var byCounter: [Bytes: [Bytes]] = [:]
        for request in batch { byCounter[request.counter, default: []].append(request.reaction) }
        try await db.transaction(.readCommitted, retry: .none) { tx in
            for (counter, reactions) in byCounter {
                try await roundTrip()
                let n = try await tx.get(counter)?.int64 ?? 0
                try await roundTrip()
                for reaction in reactions { try await tx.insert(reaction, "like") }
                try await roundTrip()
                try await tx.put(counter, Bytes(n + Int64(reactions.count)))
            }
        }
    }

    /// FNV-1a, 64-bit: a hash that is the same in every process (Swift's `Hasher` is seeded per process).
    static func fnv1a(_ key: Bytes) -> UInt64 { IsoKVLab.fnv1a(key) }
}

/// FNV-1a, 64-bit: a hash that is the same in every process (Swift's `Hasher` is seeded per process).
func fnv1a(_ key: Bytes) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in key.bytes {
        hash ^= UInt64(byte)
        hash &*= 0x100_0000_01b3
    }
    return hash
}

/// A shared count (retries, batches), safe from any task.
final class Tally: Sendable {
    private let value = Locked(0)
    func add(_ n: Int) { value.withLock { $0 += n } }
    var count: Int { value.withLock { $0 } }
}
