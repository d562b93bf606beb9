import Foundation
import IsoKV
import IsoKVStorage
import IsoKVTestSupport
import Testing

/// The data is private: a data directory is created 0700 and its files 0600 whatever the umask, and a directory
/// that other users can write is refused.
@Suite struct DataDirectoryPermissionTests {
    static func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as! NSNumber).intValue & 0o7777
    }

    @Test func aNewDirectoryAndItsFilesAreOwnerOnly() async throws {
        let parent = TemporaryDirectory("perm")
        defer { parent.remove() }
        let path = parent.file("data")
        let db = try await Database.open(path: path, options: durableOptions())
        try await db.put("k", "v")
        try await db.checkpoint()
        await db.close()
        #expect(try Self.mode(path) == 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: path)
        #expect(files.contains(DataDirectory.checkpointName) && files.contains(DataDirectory.lockName))
        for file in files { #expect(try Self.mode(parent.file("data/\(file)")) == 0o600, "\(file)") }
    }

    /// The umask is per process: a child with `umask 000` creates a backup (a new data directory) through
    /// `isokv backup`; the result is still owner-only.
    @Test func aPermissiveUmaskDoesNotOpenTheFiles() async throws {
        let source = TemporaryDirectory("perm-src"), parent = TemporaryDirectory("perm-dst")
        defer { source.remove(); parent.remove() }
        let db = try await Database.open(path: source.path, options: durableOptions())
        try await db.put("k", "v")
        await db.close()
        let destination = parent.file("copy")
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = [
            "-c", "umask 000 && exec \"$0\" backup \"$1\" \"$2\"",
            try IsokvExecutable.path(), source.path, destination
        ]
        try shell.run()
        shell.waitUntilExit()
        #expect(shell.terminationStatus == 0)
        #expect(try Self.mode(destination) == 0o700)
        for file in try FileManager.default.contentsOfDirectory(atPath: destination) {
            #expect(try Self.mode(parent.file("copy/\(file)")) == 0o600, "\(file)")
        }
    }

    @Test func aDirectoryOthersCanWriteIsRefusedAndLeftAlone() async throws {
        let dir = TemporaryDirectory("perm-open")
        defer { dir.remove() }
        #expect(chmod(dir.path, 0o777) == 0)
        let error = await expectCode(.objectNotInPrerequisiteState) {
            _ = try await Database.open(path: dir.path, options: durableOptions())
        }
        #expect(error?.file == dir.path)
        #expect(error?.message.contains("chmod 700") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)  // nothing written
        #expect(try Self.mode(dir.path) == 0o777)
    }

    @Test func aDirectoryOthersCanReadIsTightened() async throws {
        let dir = TemporaryDirectory("perm-read")
        defer { dir.remove() }
        #expect(chmod(dir.path, 0o755) == 0)
        let db = try await Database.open(path: dir.path, options: durableOptions())
        await db.close()
        #expect(try Self.mode(dir.path) == 0o700)
    }
}
