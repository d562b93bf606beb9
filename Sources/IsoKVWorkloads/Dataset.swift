import IsoKVCore
import Synchronization

/// The key and value material a workload runs over: `keyCount` keys named `user0000000000`, `user0000000001`, …
/// (YCSB's naming, so that key order is number order), one value of `valueSize` bytes, the key chooser, and the
/// counter for keys inserted during the run (YCSB-E).
///
/// Shared by every task of a run (a `Sendable` class: the key list is built once).
public final class Dataset: Sendable {
    /// The one key of the `counter` workload (sorts before every `user…` key, so no scan of YCSB-E meets it).
    public static let counterKey: Bytes = "counter"

    /// The loaded keys, in key order: `keys[i] == Dataset.key(i)`.
    public let keys: [Bytes]
    /// The value every update and insert writes: `valueSize` bytes of `v`. ``load(into:batchSize:)`` stores a
    /// copy of it per key (``loadedValue()``).
    public let value: Bytes
    /// Picks indices into `keys`.
    public let chooser: KeyChooser
    /// Number of the next key an insert takes (starts at `keys.count`); only ever incremented.
    private let nextInsert: Atomic<Int>

    public init(keyCount: Int, valueSize: Int = 100, distribution: KeyChooser.Distribution = .zipfian(theta: 0.99)) {
        precondition(keyCount >= 2, "the workloads need at least two keys (write-skew works on pairs)")
        precondition(valueSize >= 0)
        keys = (0..<keyCount).map(Self.key)
        value = Bytes([UInt8](repeating: UInt8(ascii: "v"), count: valueSize))
        chooser = KeyChooser(count: keyCount, distribution: distribution)
        nextInsert = Atomic(keyCount)
    }

    /// `user` followed by `number` in at least ten decimal digits.
    public static func key(_ number: Int) -> Bytes {
        precondition(number >= 0)
        var digits = [UInt8]()
        var n = number
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(n % 10))
            n /= 10
        } while n > 0
        while digits.count < 10 { digits.append(UInt8(ascii: "0")) }
        return Bytes(Array("user".utf8) + digits.reversed())
    }

    /// A loaded key drawn from ``chooser``'s distribution.
    @inlinable
    public func randomKey(using rng: inout SplitMix64) -> Bytes { keys[chooser.next(using: &rng)] }

    /// A key never used before in this dataset (`user` + the next number past the loaded keys).
    public func nextInsertKey() -> Bytes {
        Self.key(nextInsert.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// Keys handed out by ``nextInsertKey()`` so far.
    public var insertedKeyCount: Int { nextInsert.load(ordering: .relaxed) - keys.count }

    /// ``value`` in a buffer of its own: what ``load(into:batchSize:)`` stores under each key, and what a raw map
    /// compared with the engine must store too. One buffer shared by every key made every read, of the engine and
    /// of a raw map alike, retain and release the same reference count from every thread: a cost of the benchmark,
    /// not of the store (a store's values are separate buffers).
    public func loadedValue() -> Bytes { value.withUnsafeBytes { Bytes([UInt8]($0)) } }

    /// Stores every key with its own copy of ``value`` (``loadedValue()``) in read-committed transactions of `batchSize` keys, and the counter key as
    /// `0`. Works on any store; on a remote one a large dataset takes one round trip per key.
    public func load<Store: KeyValueStore>(into store: Store, batchSize: Int = 10_000) async throws {
        precondition(batchSize >= 1)
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(start + batchSize, keys.count)]
            try await store.transaction(.readCommitted) { tx in
                for key in batch { try await tx.put(key, loadedValue()) }
            }
            start = batch.endIndex
        }
        try await store.put(Self.counterKey, "0")
    }
}
