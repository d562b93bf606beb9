/// A key and its value, as scans return them.
public struct KeyValue: Sendable, Hashable {
    public var key: Bytes
    public var value: Bytes
    public init(key: Bytes, value: Bytes) { self.key = key; self.value = value }
}
