/// Explicit size limits, checked on every operation (`54000` when exceeded, `22023` for an empty key).
public struct Limits: Sendable, Hashable {
    /// Longest key in bytes (default 4 KiB). Keys must not be empty.
    public var maxKeySize: Int = 4096
    /// Longest value in bytes (default 1 MiB).
    public var maxValueSize: Int = 1 << 20
    /// Most distinct keys one transaction may write (default 100 000).
    public var maxWritesPerTransaction: Int = 100_000
    /// Most rows one scan may return (default 1 000 000); larger `limit`s are `22023`.
    public var maxScanLimit: Int = 1_000_000

    public init() {}
    public init(maxKeySize: Int = 4096, maxValueSize: Int = 1 << 20, maxWritesPerTransaction: Int = 100_000) {
        self.maxKeySize = maxKeySize
        self.maxValueSize = maxValueSize
        self.maxWritesPerTransaction = maxWritesPerTransaction
    }

    /// The most rows a scan asked for `limit` rows may return: `limit`, or ``maxScanLimit`` when nil. Throws `22023`
    /// for a negative `limit` or one above ``maxScanLimit``.
    ///
    /// ```swift
    /// let rows = try limits.scanRows(requested)   // read at most `rows` rows
    /// ```
    public func scanRows(_ limit: Int?) throws(IsoKVError) -> Int {
        guard let limit else { return maxScanLimit }
        if limit < 0 || limit > maxScanLimit {
            throw IsoKVError(.invalidInput, "scan limit \(limit) outside 0...\(maxScanLimit)")
        }
        return limit
    }

    /// Throws `22023` for an empty key and `54000` for one longer than ``maxKeySize``.
    public func check(key: Bytes) throws(IsoKVError) {
        if key.isEmpty { throw IsoKVError(.invalidInput, "key must not be empty") }
        if key.count > maxKeySize {
            throw IsoKVError(
                .limitExceeded, "key of \(key.count) bytes exceeds maxKeySize \(maxKeySize)",
                key: Bytes(key.bytes.prefix(64)))
        }
    }

    /// Throws `54000` for a value longer than ``maxValueSize``.
    public func check(value: Bytes, key: Bytes) throws(IsoKVError) {
        if value.count > maxValueSize {
            throw IsoKVError(
                .limitExceeded, "value of \(value.count) bytes exceeds maxValueSize \(maxValueSize)",
                key: key)
        }
    }
}
