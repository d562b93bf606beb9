import Synchronization

/// A byte string in one heap object, behind a small header that its owner uses for bookkeeping: two words and a
/// link to another such object. The engine's committed versions are these (commit timestamp, creator, next older
/// version), so that a value read from the engine is that object shared — no copy, and no second allocation behind
/// the version. A ``Bytes`` longer than ``Bytes/inlineCapacity`` can reference one (`Bytes(sharing:)`).
///
/// ```swift
/// let node = [UInt8](repeating: 7, count: 100).withUnsafeBytes {
///     SharedBytes.make(bytes: $0, word0: 12, word1: 7, next: nil)
/// }
/// let value = Bytes(sharing: node)      // 100 bytes, no copy
/// ```
///
/// Invariants: immutable once made, except the link, which the owner changes with the atomic operations below
/// (the engine under its chain's lock), and `word0`, which the owner may set once more before it publishes the
/// object to readers of the words (the engine builds a version before its commit number is known, and sets it at
/// install, before the store that publishes the version; a `Bytes` sharing the object reads only the bytes). `count` is -1 for "no bytes" (the engine's deletions); such an object is
/// never shared by a `Bytes`. The link holds +1 on the next object; freeing this object releases the objects linked
/// from it iteratively (a long list never recurses).
@usableFromInline
package final class SharedBytes: ManagedBuffer<SharedBytes.Header, SharedBytes.Link> {
    @usableFromInline
    package struct Header {
        /// Bytes stored after the link; -1: none.
        @usableFromInline package let count: Int
        /// The owner's words.
        @usableFromInline package var word0: UInt64
        @usableFromInline package let word1: UInt64
    }

    /// The first tail element: the link (0, or an object's address with +1 owned by this one). The bytes follow it,
    /// in the elements after it, as raw memory.
    @usableFromInline
    package struct Link: ~Copyable {
        @usableFromInline let next: Atomic<UInt>
    }

    /// A new object holding a copy of `bytes` (nil: none), the owner's words, and `next` (its +1 moves here).
    package static func make(
        bytes: UnsafeRawBufferPointer?, word0: UInt64, word1: UInt64, next: Unmanaged<SharedBytes>?
    ) -> SharedBytes {
        let count = bytes?.count ?? -1
        let stride = MemoryLayout<Link>.stride
        let elements = 1 + (Swift.max(count, 0) + stride - 1) / stride
        let object = unsafeDowncast(
            SharedBytes.create(minimumCapacity: elements) { _ in Header(count: count, word0: word0, word1: word1) },
            to: SharedBytes.self)
        object.withUnsafeMutablePointerToElements { tail in
            tail.initialize(to: Link(next: Atomic(next.map { UInt(bitPattern: $0.toOpaque()) } ?? 0)))
            if let bytes, let source = bytes.baseAddress, count > 0 {
                UnsafeMutableRawPointer(tail + 1).copyMemory(from: source, byteCount: count)
            }
        }
        return object
    }

    deinit {
        // Release the linked objects iteratively: while this reference is the last one, detach the object's own
        // link before letting it go.
        var cur = exchangeNext(nil)?.takeRetainedValue()
        while cur != nil, isKnownUniquelyReferenced(&cur!) {
            cur = cur!.exchangeNext(nil)?.takeRetainedValue()
        }
        _ = withUnsafeMutablePointerToElements { $0.deinitialize(count: 1) }
    }

    @inlinable @inline(__always)
    package var count: Int { withUnsafeMutablePointerToHeader { $0.pointee.count } }

    @inlinable @inline(__always)
    package var word0: UInt64 { withUnsafeMutablePointerToHeader { $0.pointee.word0 } }

    @inlinable @inline(__always)
    package var word1: UInt64 { withUnsafeMutablePointerToHeader { $0.pointee.word1 } }

    /// Sets `word0` and the link (whose +1 moves here) of an object no reader of the words or the link can reach
    /// yet (see the invariants above): plain and relaxed stores, ordered before the caller's publishing store by
    /// that store's own ordering (the engine's head store is sequentially consistent).
    @inline(__always)
    package func completeBeforePublication(word0: UInt64, next: Unmanaged<SharedBytes>?) {
        withUnsafeMutablePointerToHeader { $0.pointee.word0 = word0 }
        withUnsafeMutablePointerToElements { $0.pointee.next.store(Self.word(next), ordering: .relaxed) }
    }

    /// Calls `body` with the bytes (empty when there are none).
    @usableFromInline @inline(__always)
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeMutablePointerToElements { tail in
            try body(UnsafeRawBufferPointer(start: UnsafeRawPointer(tail + 1), count: Swift.max(count, 0)))
        }
    }

    /// The link, loaded (sequentially consistent).
    @inlinable @inline(__always)
    package func loadNext() -> Unmanaged<SharedBytes>? {
        Self.unmanaged(withUnsafeMutablePointerToElements { $0.pointee.next.load(ordering: .sequentiallyConsistent) })
    }

    /// Stores the link (sequentially consistent); the caller has arranged the +1 it holds and released the old one.
    @inline(__always)
    package func storeNext(_ next: Unmanaged<SharedBytes>?) {
        withUnsafeMutablePointerToElements { $0.pointee.next.store(Self.word(next), ordering: .sequentiallyConsistent) }
    }

    /// Replaces the link (sequentially consistent), returning the old one with its +1.
    @inline(__always)
    package func exchangeNext(_ next: Unmanaged<SharedBytes>?) -> Unmanaged<SharedBytes>? {
        Self.unmanaged(
            withUnsafeMutablePointerToElements {
                $0.pointee.next.exchange(Self.word(next), ordering: .sequentiallyConsistent)
            })
    }

    @usableFromInline @inline(__always)
    static func word(_ u: Unmanaged<SharedBytes>?) -> UInt { u.map { UInt(bitPattern: $0.toOpaque()) } ?? 0 }

    @inlinable @inline(__always)
    static func unmanaged(_ word: UInt) -> Unmanaged<SharedBytes>? {
        UnsafeRawPointer(bitPattern: word).map { Unmanaged.fromOpaque($0) }
    }
}

/// The reference a ``Bytes`` holds on a ``SharedBytes``. Sendable: the bytes and header it reads are immutable.
@usableFromInline
struct SharedBytesReference: @unchecked Sendable {
    @usableFromInline let object: SharedBytes
    @usableFromInline init(_ object: SharedBytes) { self.object = object }
}
