import Foundation
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

/// `isokv check` and `isokv bench durability`, run as the user runs them.
@Suite struct CommandLineTests {
    @Test func checkReportsOkTornTailAndCorruption() async throws {
        let dir = TemporaryDirectory("cli")
        defer { dir.remove() }
        let kv = try await DurableKeyValueLog.open(directory: dir.path)
        for i in 0..<20 { try await kv.commit { _ in [(bytes("k\(i)"), bytes("v\(i)"))] } }
        try await kv.checkpoint()
        for i in 0..<5 { try await kv.commit { _ in [(bytes("k\(i)"), bytes("w\(i)"))] } }
        await kv.close()

        let ok = try IsokvExecutable.run(["check", dir.path])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("checkpoint: sequence 20, 20 entries"))
        #expect(ok.stdout.contains("commits to replay after the checkpoint: 5"))

        let segment = dir.file(dir.segments().last!)
        try rewriteFile(segment) { $0 += [0x49, 0x4B, 0x56, 0x52, 0x01] }
        let torn = try IsokvExecutable.run(["check", dir.path])
        #expect(torn.status == 0)
        #expect(torn.stdout.contains("torn tail"))

        // A flipped bit in the first record's payload, with valid records after it: corruption, exit 1.
        let offset = WALFormat.segmentHeaderBytes + WALFormat.frameHeaderBytes + 3
        try rewriteFile(segment) { $0[offset] ^= 0x10 }
        let bad = try IsokvExecutable.run(["check", dir.path])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("\(segment) at offset \(WALFormat.segmentHeaderBytes)"))
    }

    @Test func benchDurabilityPrintsEveryModeAsJSON() throws {
        let dir = TemporaryDirectory("bench")
        defer { dir.remove() }
        let result = try IsokvExecutable.run([
            "bench", "durability", "--writers", "4", "--seconds", "0.05", "--directory", dir.path,
            "--format", "json"
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let rows = json?["results"] as? [[String: Any]] ?? []
        #expect(rows.compactMap { $0["name"] as? String } == ["raw", "unsafeNoSync", "buffered", "fsync"])
        for row in rows { #expect((row["commitsPerSecond"] as? Double ?? 0) > 0) }
    }
}
