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
        /// Called on a committing task once its record is durable and before its commit is published, with the
        /// commit's sequence number (nil: none). Test-only (`@_spi(Testing)`): a test holds one commit here to make
        /// a later one publish first.
        @_spi(Testing) public var beforePublish: (@Sendable (_ commit: UInt64) async -> Void)?

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
