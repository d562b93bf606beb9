import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// The processes `isokv bench http` runs: `isokv serve`, nginx and wrk. Each is a child process whose output goes to
// a file in the run's temporary directory; waits poll with `Task.sleep` (they suspend, no thread blocks on a pipe
// or in `waitpid`).

/// Where wrk and nginx are, and what they call themselves.
struct BenchTools {
    var wrk: String
    var nginx: String
    var wrkVersion = "wrk"
    var nginxVersion = "nginx"

    /// The given paths, or the executables found in `PATH` (and `/usr/sbin`, where Debian puts nginx).
    static func locate(wrk: String?, nginx: String?) throws -> BenchTools {
        func find(_ name: String, _ given: String?) throws -> String {
            if let given {
                guard FileManager.default.isExecutableFile(atPath: given) else {
                    throw ValidationError("\(given) is not an executable file")
                }
                return given
            }
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
                let candidate = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
            throw ValidationError(
                "\(name) not found: install wrk and nginx (Debian: apt-get install wrk nginx), "
                    + "or run scripts/bench-http, which installs them")
        }
        return BenchTools(wrk: try find("wrk", wrk), nginx: try find("nginx", nginx))
    }

    /// The path of the running `isokv` executable (the server measured is this same build).
    static func ownExecutable() throws -> String {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return exe }
        let argv0 = CommandLine.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: argv0) else {
            throw ValidationError("cannot find the isokv executable to start `isokv serve`")
        }
        return argv0
    }

    /// Fills in the version lines (`wrk -v` and `nginx -v` print them, to stdout and stderr).
    mutating func readVersions(in directory: BenchDirectory) async {
        if let out = try? await ChildProcesses.output(of: wrk, ["-v"], in: directory, label: "wrk-version"),
            let line = out.split(separator: "\n").first(where: { $0.hasPrefix("wrk ") })
        {
            wrkVersion = line.split(separator: " ").prefix(2).joined(separator: " ")
        }
        if let out = try? await ChildProcesses.output(of: nginx, ["-v"], in: directory, label: "nginx-version"),
            let range = out.range(of: "nginx/")
        {
            nginxVersion = String(out[range.lowerBound...].prefix { !$0.isWhitespace })
        }
    }
}

/// The run's temporary directory (mode 0755: nginx's workers, which drop root, read the static file from it; the
/// store's directory inside it is created 0700 by `Database.open`). Removed at the end.
struct BenchDirectory {
    let root: String

    init(_ label: String) throws {
        var template = Array("/tmp/isokv-\(label)-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ValidationError("cannot create a temporary directory in /tmp")
        }
        root = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        chmod(root, 0o755)
    }

    func path(_ name: String) -> String { name.isEmpty ? root : root + "/" + name }

    func makeDirectory(_ name: String, mode: Int) throws -> String {
        let p = path(name)
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        chmod(p, mode_t(mode))
        return p
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// The servers started for a run; `stopAll()` stops every one still running (SIGTERM, then SIGKILL after 20 s).
final class ChildProcesses {
    private var running: [(name: String, process: Process)] = []

    /// Starts `isokv serve` on a free loopback port (`--listen 127.0.0.1:0`) and returns the port and the allocator
    /// its "listening on" line prints.
    func startIsokv(executable: String, data: String, durability: String, log: String) async throws -> (
        port: Int, allocator: String
    ) {
        let out = log + ".stdout"
        let process = try Self.spawn(
            executable,
            [
                "serve", "--data", data, "--listen", "127.0.0.1:0", "--durability", durability, "--log-level",
                "warning"
            ], stdout: out, stderr: log)
        running.append(("isokv serve", process))
        let deadline = ContinuousClock.now + .seconds(300)
        let marker = "listening on http://127.0.0.1:"
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if let range = text.range(of: marker), let port = Int(text[range.upperBound...].prefix { $0.isNumber }) {
                // "… (durable store at …, auth: none, allocator: jemalloc 5.3.0, 1 arena (preloaded: …))"
                let line = text[range.upperBound...].prefix { $0 != "\n" }
                let allocator = line.range(of: ", allocator: ").map { String(line[$0.upperBound...].dropLast()) }
                return (port, allocator ?? "not reported")
            }
            guard process.isRunning else {
                throw BenchHTTPError("isokv serve exited (status \(process.terminationStatus)) before listening")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchHTTPError("isokv serve did not listen within 300 s")
    }

    /// Starts nginx (`daemon off`, so it is this process's child) on a free loopback port with its own config in
    /// `directory` (none of the system's): `value` is its one file, served for every path. Returns the port.
    func startNginx(executable: String, directory: String, value: [UInt8]) async throws -> Int {
        let www = directory + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        chmod(www, 0o755)
        guard FileManager.default.createFile(atPath: www + "/value", contents: Data(value)) else {
            throw BenchHTTPError("cannot write nginx's static file in \(www)")
        }
        chmod(www + "/value", 0o644)
        // A port taken between our probe and nginx's bind makes nginx exit: try a few ports.
        for _ in 0..<5 {
            let port = try Self.freeLoopbackPort()
            let config = Self.nginxConfig(directory: directory, port: port)
            try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            try? FileManager.default.removeItem(atPath: directory + "/nginx.pid")
            let process = try Self.spawn(
                executable, ["-c", directory + "/nginx.conf", "-p", directory + "/", "-e", directory + "/error.log"],
                stdout: directory + "/stdout.log", stderr: directory + "/stderr.log")
            running.append(("nginx", process))
            // nginx writes its pid file after it has opened its listening socket.
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, process.isRunning,
                !FileManager.default.fileExists(atPath: directory + "/nginx.pid")
            {
                try await Task.sleep(for: .milliseconds(20))
            }
            if process.isRunning, FileManager.default.fileExists(atPath: directory + "/nginx.pid") { return port }
            try await stop(process)
            let log = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
            if !log.contains("Address already in use") {
                throw BenchHTTPError(
                    "nginx did not start: " + log.split(separator: "\n").suffix(5).joined(separator: "\n"))
            }
        }
        throw BenchHTTPError("nginx could not bind a free loopback port")
    }

    /// nginx as a static-file server is usually tuned: no access log, cached open files, long keep-alive.
    static func nginxConfig(directory d: String, port: Int) -> String {
        """
        daemon off;
        master_process on;
        worker_processes auto;
        pid \(d)/nginx.pid;
        error_log \(d)/error.log warn;
        events { worker_connections 4096; }
        http {
            access_log off;
            client_body_temp_path \(d)/tmp-body;
            proxy_temp_path \(d)/tmp-proxy;
            fastcgi_temp_path \(d)/tmp-fastcgi;
            uwsgi_temp_path \(d)/tmp-uwsgi;
            scgi_temp_path \(d)/tmp-scgi;
            default_type application/octet-stream;
            sendfile on;
            tcp_nodelay on;
            keepalive_requests 1000000;
            keepalive_timeout 75s;
            open_file_cache max=64 inactive=60s;
            open_file_cache_valid 60s;
            server {
                listen 127.0.0.1:\(port);
                root \(d)/www;
                location / { try_files /value =404; }
            }
        }

        """
    }

    func stopAll() async throws {
        while let (_, process) = running.popLast() { try await stop(process) }
    }

    private func stop(_ process: Process) async throws {
        running.removeAll { $0.process === process }
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs `executable arguments…` to completion (at most 60 s) and returns its stdout and stderr, joined.
    static func output(of executable: String, _ arguments: [String], in directory: BenchDirectory, label: String)
        async throws -> String
    {
        let out = directory.path(label + ".out"), err = directory.path(label + ".err")
        let process = try spawn(executable, arguments, stdout: out, stderr: err)
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw BenchHTTPError("\(executable) did not finish within 60 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// Starts a child with its stdout and stderr written to files (created or truncated).
    static func spawn(_ executable: String, _ arguments: [String], stdout: String, stderr: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        _ = FileManager.default.createFile(atPath: stdout, contents: nil)
        _ = FileManager.default.createFile(atPath: stderr, contents: nil)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
        try process.run()
        return process
    }

    /// A loopback TCP port that was free a moment ago (bound to port 0, read back, closed).
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchHTTPError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Int32 in
                guard bind(fd, sa, length) == 0 else { return -1 }
                return getsockname(fd, sa, &length)
            }
        }
        guard bound == 0 else { throw BenchHTTPError("cannot bind a loopback port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A failure of the benchmark's machinery (a server that does not start, wrk failing), with what went wrong.
struct BenchHTTPError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
