import IsoKVCore
import IsoKVStorage

extension Database {
    /// Options of ``open(path:options:)``.
    public struct OpenOptions: Sendable {
        /// When a commit is acknowledged (default `.fsync`: after its record is on stable storage).
        public var durability: Durability
        /// Write a checkpoint in the background once the WAL holds this many bytes (default 64 MiB; nil: only
        /// ``Database/checkpoint()``). Recovery time and disk use grow with the WAL between checkpoints.
        public var checkpointWALBytes: Int64?
        /// Size at which a WAL segment is closed and the next one created (default 64 MiB, minimum 4 KiB). Only
        /// closed segments are deleted by checkpoints.
        public var segmentBytes: Int
        /// Limits and lock timeout, as for ``Database/inMemory(_:)``.
        public var configuration: Configuration
        /// Failpoints for tests (nil: none). Test-only: reached through `@_spi(Testing) import IsoKV`.
        @_spi(Testing) public var faults: FaultHook?

        /// ```swift
        /// let db = try await Database.open(path: "data", options: .init(durability: .buffered))
        /// ```
        public init(
            durability: Durability = .fsync, checkpointWALBytes: Int64? = 64 << 20,
            segmentBytes: Int = 64 << 20, configuration: Configuration = Configuration()
        ) {
            self.durability = durability
            self.checkpointWALBytes = checkpointWALBytes
            self.segmentBytes = segmentBytes
            self.configuration = configuration
        }
    }
}
