import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The wrk Lua scripts of `isokv bench http`. nginx and isokv get the same GET script (nginx serves its one file
/// for every path), so the client does the same work per request for both.
struct WrkScripts {
    var get: String
    var put: String
    var mix: String

    /// Key number `i` as the benchmark spells it: `k00000042`.
    static func key(_ i: Int) -> String {
        let digits = String(i)
        return "k" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// Writes `get.lua` (GET only), `put.lua` (PUT only) and `mix.lua` (90% GET, 10% PUT) into `directory`.
    static func write(in directory: String, keys: Int, valueSize: Int) throws -> WrkScripts {
        let scripts = WrkScripts(get: directory + "/get.lua", put: directory + "/put.lua", mix: directory + "/mix.lua")
        try lua(keys: keys, valueSize: valueSize, putFraction: 0).write(
            toFile: scripts.get, atomically: true, encoding: .utf8)
        try lua(keys: keys, valueSize: valueSize, putFraction: 1).write(
            toFile: scripts.put, atomically: true, encoding: .utf8)
        try lua(keys: keys, valueSize: valueSize, putFraction: 0.1).write(
            toFile: scripts.mix, atomically: true, encoding: .utf8)
        return scripts
    }

    /// A script whose requests are PUTs (raw bytes, `valueSize` of them) with probability `putFraction`, GETs
    /// otherwise, each of a key drawn uniformly from `k00000000`…; every wrk thread seeds its generator differently.
    /// Requests are formatted once in `init` (up to 100 000 keys, and PUTs up to 32 MiB of them), so per request
    /// the client only draws numbers. `done` prints one `ISOKV-WRK {json}` line: counts, errors, exact p50/p99.
    static func lua(keys: Int, valueSize: Int, putFraction: Double) -> String {
        let preformatted = min(keys, 100_000)
        let preformattedPuts = keys * (valueSize + 100) <= 32 << 20 ? preformatted : 0
        return """
            -- isokv bench http: \(putFraction == 0 ? "GET" : putFraction == 1 ? "PUT" : "GET/PUT mix"), keys uniform in 0..<\(keys)
            local keys, put_fraction, value_size = \(keys), \(putFraction), \(valueSize)
            local preformatted, preformatted_puts = \(preformatted), \(preformattedPuts)
            local body = string.rep("v", value_size)
            local put_headers = { ["Content-Type"] = "application/octet-stream" }
            local gets, puts = {}, {}
            local threads = 0

            function setup(thread)
                threads = threads + 1
                thread:set("thread_seed", threads * 104729 + os.time())
            end

            local function path(i) return string.format("/v1/kv/k%08d", i) end

            function init(args)
                math.randomseed(thread_seed or os.time())
                if put_fraction < 1 then
                    for i = 0, preformatted - 1 do gets[i] = wrk.format("GET", path(i)) end
                end
                if put_fraction > 0 then
                    for i = 0, preformatted_puts - 1 do puts[i] = wrk.format("PUT", path(i), put_headers, body) end
                end
            end

            function request()
                local i = math.random(0, keys - 1)
                if put_fraction > 0 and (put_fraction >= 1 or math.random() < put_fraction) then
                    return puts[i] or wrk.format("PUT", path(i), put_headers, body)
                end
                return gets[i] or wrk.format("GET", path(i))
            end

            local function finite(x) if x ~= x or x == math.huge then return 0 end return x end

            function done(summary, latency, requests)
                local e = summary.errors
                io.write(string.format(
                    'ISOKV-WRK {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
                    '"status":%d,"timeout":%d,"p50_us":%.1f,"p99_us":%.1f,"mean_us":%.1f}\\n',
                    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
                    e.timeout, finite(latency:percentile(50)), finite(latency:percentile(99)), finite(latency.mean)))
            end

            """
    }
}

/// What `done` in the scripts prints, and the figures derived from it.
struct WrkResult: Decodable {
    var requests: Int
    var duration_us: Int
    var bytes: Int
    var connect: Int
    var read: Int
    var write: Int
    var status: Int
    var timeout: Int
    var p50_us: Double
    var p99_us: Double
    var mean_us: Double

    var requestsPerSecond: Double { duration_us > 0 ? Double(requests) / (Double(duration_us) / 1e6) : 0 }
    var p50Microseconds: Double { p50_us }
    var p99Microseconds: Double { p99_us }
    var meanMicroseconds: Double { mean_us }
    var errors: Int { connect + read + write + timeout }
    var non2xx: Int { status }
    var bytesPerResponse: Double { requests > 0 ? Double(bytes) / Double(requests) : 0 }

    /// Finds the `ISOKV-WRK` line in wrk's output.
    static func parse(_ output: String) -> WrkResult? {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("ISOKV-WRK ") }) else { return nil }
        return try? JSONDecoder().decode(WrkResult.self, from: Data(line.dropFirst("ISOKV-WRK ".count).utf8))
    }
}

/// Runs wrk against one loopback port with one script.
struct WrkRunner {
    var executable: String
    var connections: Int
    var threads: Int
    /// Where wrk's output files go.
    var output: String

    func run(port: Int, script: String, seconds: Int, label: String) async throws -> WrkResult {
        let out = output + "/wrk-\(label).out", err = output + "/wrk-\(label).err"
        let process = try ChildProcesses.spawn(
            executable,
            [
                "-t", "\(threads)", "-c", "\(connections)", "-d", "\(seconds)s", "--timeout", "10s", "-s", script,
                "http://127.0.0.1:\(port)/"
            ], stdout: out, stderr: err)
        let deadline = ContinuousClock.now + .seconds(seconds + 60)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw BenchHTTPError("wrk (\(label)) did not finish within \(seconds + 60) s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0, let result = WrkResult.parse(text) else {
            let errors = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            throw BenchHTTPError(
                "wrk (\(label)) failed with status \(process.terminationStatus): \(errors)\(text.suffix(800))")
        }
        return result
    }
}
