import Foundation
@_spi(Testing) import IsoKV
import IsoKVStorage

/// Options for small, fast durable test databases.
func durableOptions(
    _ mode: Database.Durability = .fsync, checkpointWALBytes: Int64? = nil, segmentBytes: Int = 64 << 20,
    faults: FaultHook? = nil
) -> Database.OpenOptions {
    var options = Database.OpenOptions(
        durability: mode, checkpointWALBytes: checkpointWALBytes,
        segmentBytes: segmentBytes)
    options.faults = faults
    return options
}

/// Every key → (value, version) the database holds now (single-key reads of `keys`).
func contents(_ db: Database, _ keys: [Bytes]) async throws -> [Bytes: VersionedValue] {
    var out: [Bytes: VersionedValue] = [:]
    for k in keys { if let v = try await db.get(k) { out[k] = v } }
    return out
}
