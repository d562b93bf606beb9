import Foundation
import IsoKV
import IsoKVStorage

/// A fresh empty directory under /tmp, removed by `remove()`.
struct TempDir {
    let path: String

    init(_ label: String) {
        var template = Array("/tmp/isokv-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// WAL segment file names, sorted.
    func segments() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("wal-") }.sorted()
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Reads a file, lets `body` change its bytes, writes it back.
func rewriteFile(_ path: String, _ body: (inout [UInt8]) -> Void) throws {
    var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    body(&data)
    try Data(data).write(to: URL(fileURLWithPath: path))
}

/// Options for small, fast durable test databases.
func durableOptions(_ mode: Database.Durability = .fsync, checkpointWALBytes: Int64? = nil, segmentBytes: Int = 64 << 20,
                    faults: FaultHook? = nil) -> Database.OpenOptions {
    Database.OpenOptions(durability: mode, checkpointWALBytes: checkpointWALBytes, segmentBytes: segmentBytes,
                         faults: faults)
}

/// Every key → (value, version) the database holds now (single-key reads of `keys`).
func contents(_ db: Database, _ keys: [Bytes]) async throws -> [Bytes: VersionedValue] {
    var out: [Bytes: VersionedValue] = [:]
    for k in keys { if let v = try await db.get(k) { out[k] = v } }
    return out
}
