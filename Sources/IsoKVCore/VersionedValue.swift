/// A committed value with its version (the ETag).
///
/// The version is the commit sequence number of the transaction that wrote the value: strictly increasing per key,
/// never reused, even when a key is deleted and created again; not dense (other keys' commits take numbers too).
public struct VersionedValue: Sendable, Hashable {
    public var value: Bytes
    public var version: UInt64
    public init(value: Bytes, version: UInt64) { self.value = value; self.version = version }
}
