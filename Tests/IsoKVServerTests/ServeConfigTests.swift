import Foundation
import IsoKVTestSupport
import Testing

/// Runs `isokv ARGUMENTS` to completion (for commands that exit at once); returns the status and stdout + stderr.
func runIsokv(_ arguments: [String]) async throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try IsokvExecutable.path())
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["SWIFT_BACKTRACE"] = "enable=no"
    process.environment = env
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    let finished = AsyncStream<Void>.makeStream()
    process.terminationHandler = { _ in finished.continuation.finish() }
    try process.run()
    // A command that should exit at once but serves instead is stopped (and the test fails on its status).
    let pid = process.processIdentifier
    let guardTask = Task {
        try await Task.sleep(for: .seconds(30))
        kill(pid, SIGKILL)
    }
    defer { guardTask.cancel() }
    for await _ in finished.stream {}
    let data = out.fileHandleForReading.readDataToEndOfFile()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// `isokv serve --config FILE`: the file's keys are the long option names; the command line overrides the file;
/// unknown keys and bad values are errors that name the key.
@Suite("Server config file (isokv serve --config)", .serialized)
struct ServeConfigTests {
    @Test func settingsComeFromTheFileAndTheCommandLineWins() async throws {
        let dir = TemporaryDirectory("serve-config")
        defer { dir.remove() }
        let file = dir.file("isokv.json")
        try
            #"{"data": "\#(dir.file("from-file"))", "listen": "127.0.0.1:1", "drain-delay-ms": 0, "max-body": "64K", "durability": "buffered", "insecure": false}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        // --listen on the command line beats the file's port 1; --data comes from the file.
        let server = try await ServeProcess.start(arguments: ["--config", file])
        defer { server.signal(SIGKILL) }
        let printed = server.output.withLock { $0 }
        #expect(printed.contains("data: \(dir.file("from-file"))"), "\(printed)")
        #expect(printed.contains("durability: buffered"), "\(printed)")
        #expect(FileManager.default.fileExists(atPath: dir.file("from-file")))
        // max-body from the file: a 65 KiB body is refused with the limit.
        let (_, reply) = try await runCommand(
            "/usr/bin/curl",
            ["-s", "-X", "PUT", "--data-binary", String(repeating: "x", count: 65 * 1024), server.base + "/v1/kv/big"])
        #expect(reply.contains("54000"), "\(reply)")
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)

        // --data on the command line beats the file's.
        let other = try await ServeProcess.start(arguments: ["--config", file, "--data", dir.file("from-flag")])
        defer { other.signal(SIGKILL) }
        #expect(other.output.withLock { $0 }.contains("data: \(dir.file("from-flag"))"))
        other.signal(SIGTERM)
        #expect(try await other.waitForExit() == 0)
    }

    @Test(arguments: [
        (#"{"listen": "127.0.0.1:0", "port": 7070}"#, #"unknown key "port""#),
        (#"{"drain-delay-ms": "soon"}"#, #""drain-delay-ms" must be an integer"#),
        (#"{"insecure": "yes"}"#, #""insecure" must be true or false"#),
        (#"{"listen": 7070}"#, #""listen" must be a string"#),
        (#"{"log-level": "loud"}"#, "--log-level must be"),
        (#"{"durability": "sometimes"}"#, "--durability must be"),
        (#"["listen"]"#, "not a JSON object")
    ])
    func badFilesAreClearErrors(_ json: String, _ message: String) async throws {
        let dir = TemporaryDirectory("serve-config-bad")
        defer { dir.remove() }
        let file = dir.file("isokv.json")
        try json.write(toFile: file, atomically: true, encoding: .utf8)
        let (status, output) = try await runIsokv([
            "serve", "--config", file, "--data", dir.file("data"), "--listen", "127.0.0.1:0"
        ])
        #expect(status != 0)
        #expect(output.contains(message), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("data") + "/LOCK"))
    }
}
