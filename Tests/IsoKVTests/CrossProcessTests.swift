import Foundation
import IsoKV
import IsoKVTestSupport
import Testing

/// Two processes on one data directory: the directory lock is an advisory `flock`, so it must hold across
/// processes, not only between two opens in one process.
@Suite struct CrossProcessTests {
    /// This process holds the directory open (with a checkpoint and a WAL tail); a second process (`isokv
    /// crash-child --engine`, which would recover the directory, write and print `READY`) must fail with the
    /// directory lock's code `55006` before doing anything: no `READY`, no output, and every file of the directory
    /// byte for byte as it was. (Without the lock the child runs its workload forever: the time limit fails the
    /// test instead of hanging the run.)
    @Test(.timeLimit(.minutes(1)))
    func secondProcessOnAHeldDirectoryGetsDirectoryLockedBeforeDoingAnything() async throws {
        let dir = TemporaryDirectory("cross-process-lock")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        for i in 0..<20 { try await db.put(Bytes("k\(i)"), Bytes("v\(i)")) }
        try await db.checkpoint()
        try await db.put("tail", "after the checkpoint")
        let before = try Self.snapshot(dir)
        let (status, stdout, stderr) = try await onOwnThread {
            try IsokvExecutable.run(["crash-child", dir.path, "--engine", "--accounts", "4", "--writers", "1"])
        }
        #expect(status != 0)
        #expect(stdout.isEmpty, "the second process did something: \(stdout.prefix(200))")
        #expect(stderr.contains("IsoKVError \(IsoKVError.Code.objectInUse.rawValue)"), "\(stderr)")
        #expect(stderr.contains(dir.path), "\(stderr)")
        #expect(try Self.snapshot(dir) == before, "the second process changed the directory")
        // This process still owns it and keeps working.
        try await db.put("tail", "still mine")
        #expect(try await db.get("tail")?.value == "still mine")
        await db.close()
    }

    /// Every file of the directory and its bytes.
    static func snapshot(_ dir: TemporaryDirectory) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: dir.file(name)))
        }
        return files
    }
}
