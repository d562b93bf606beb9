import Foundation
import IsoKVTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The crash tests' child (`isokv crash-child`) must not outlive the process that reads it: a test runner that dies
/// mid-test would otherwise leave it running forever, holding the runner's inherited output open (the CI run would
/// wait for it until its watchdog).
///
/// Serialized: each test's child must not inherit the other test's pipe.
@Suite(.serialized) struct CrashChildLifetimeTests {
    /// A shell starts the child in the background with its output in a file, waits until it printed `READY` (so the
    /// shell is the parent it started under) and exits; the re-parented child must end by itself.
    ///
    /// The shell is spawned and awaited with `posix_spawn` and `waitpid` on a thread of the test's own, not with
    /// `Process`: Foundation learns that a process ended when a socket it passes to it is closed, and the child
    /// inherits that socket from the shell, so `Process` would report the shell's end only once the child ended.
    @Test(.timeLimit(.minutes(1)))
    func aChildWhoseParentExitsEnds() async throws {
        let data = TemporaryDirectory("orphan-data"), scratch = TemporaryDirectory("orphan-out")
        defer {
            data.remove()
            scratch.remove()
        }
        let script = """
            "$0" crash-child "$1" --engine --accounts 4 --writers 1 > "$2" 2>&1 < /dev/null &
            echo $! > "$3"
            i=0
            while ! grep -q READY "$2"; do
              i=$((i + 1)); [ $i -gt 600 ] && exit 3
              sleep 0.05
            done
            """
        let out = scratch.file("child.out"), pidFile = scratch.file("child.pid")
        let arguments = ["/bin/sh", "-c", script, try IsokvExecutable.path(), data.path, out, pidFile]
        let status = try await onOwnThread { () throws -> Int32 in try Self.spawnAndWait(arguments) }
        let pidText = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
        let pid = try #require(
            pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)),
            "the shell did not start the child (status \(status))")
        let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status == 0, "the child never printed READY: \(output)")
        var ended = false
        for _ in 0..<200 {  // 20 s; the child checks its parent four times a second
            if !Self.isRunning(pid) {
                ended = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        if !ended { kill(pid, SIGKILL) }
        #expect(ended, "the orphaned child \(pid) still runs 20 s after its parent exited")
    }

    /// The child's reader reads up to `READY` and closes the pipe; with `SIGPIPE` ignored (as a shell's `trap ''`
    /// or a runtime that ignores it passes on), the child's next line fails with `EPIPE`, and it must exit by
    /// itself with status 0, not write into the void forever.
    @Test(.timeLimit(.minutes(1)))
    func aChildWhoseReaderClosesThePipeExits() async throws {
        let data = TemporaryDirectory("closed-pipe")
        defer { data.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", #"trap '' PIPE; exec "$0" crash-child "$1" --engine --accounts 4 --writers 1"#,
            try IsokvExecutable.path(), data.path
        ]
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        env.removeValue(forKey: "ISOKV_FAILPOINT")
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let finished = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in finished.continuation.finish() }
        try process.run()
        let reader = pipe.fileHandleForReading
        let sawReady = try await onOwnThread { () throws -> Bool in
            var text = ""
            while !text.contains("READY ") {
                let chunk = reader.availableData
                if chunk.isEmpty { return false }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return true
        }
        try reader.close()
        #expect(sawReady, "the child ended before READY")
        let timer = Task {
            try await Task.sleep(for: .seconds(20))
            process.terminate()
        }
        for await _ in finished.stream {}
        timer.cancel()
        #expect(process.terminationReason == .exit, "the child did not exit by itself after its reader left")
        #expect(process.terminationStatus == 0)
    }

    /// Runs `arguments[0]` with `arguments` (the environment of the test, `SWIFT_BACKTRACE` off, no descriptor but
    /// the standard three) and returns its wait status once it ended.
    static func spawnAndWait(_ arguments: [String]) throws -> Int32 {
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        env.removeValue(forKey: "ISOKV_FAILPOINT")
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        // Only stdin, stdout and stderr: the test process's other descriptors (other tests' pipes) must not leak
        // into the shell and the child it leaves behind (Swift's Glibc module does not offer `addclosefrom_np`, so
        // each descriptor open now is closed by name).
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap({ Int32($0) })
            ?? []
        where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard spawned == 0 else { throw IsokvExecutable.Failure("posix_spawn \(arguments[0]): \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw IsokvExecutable.Failure("waitpid: \(errno)") }
        }
        return status
    }

    /// Whether `pid` is a live process (a zombie waiting for its new parent to reap it has ended).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }
}
