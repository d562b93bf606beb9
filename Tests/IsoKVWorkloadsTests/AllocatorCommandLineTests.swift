import Foundation
import IsoKVTestSupport
import Testing

/// The `isokv` process's choice of allocator (`isokv/Support/Allocator.swift`), through the hidden `isokv allocator`
/// command, which prints the allocator in effect and the loader variables a child process would inherit.
///
/// The jemalloc cases need Debian's libjemalloc2 (`scripts/test` installs it); under `CI` they run, and fail, even
/// when it is missing, so that CI never passes without them.
@Suite("Workloads isokv allocator")
struct AllocatorCommandLineTests {
    struct Output: Decodable {
        var allocator: String
        var environment: [String: String]
    }

    /// The library directories of this machine's glibc, where Debian puts libjemalloc.so.2.
    static let libraryDirectories = [
        "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu",
        "/usr/local/lib", "/usr/lib64", "/usr/lib"
    ]

    static func library(_ name: String) -> String? {
        libraryDirectories.map { $0 + "/" + name }.first { FileManager.default.isReadableFile(atPath: $0) }
    }

    static let jemalloc = library("libjemalloc.so.2")
    static let jemallocCases = jemalloc != nil || ProcessInfo.processInfo.environment["CI"] != nil

    /// The loader variables this test process has (normally none): what `isokv` must hand on unchanged.
    static let inherited = ProcessInfo.processInfo.environment.filter { ["LD_PRELOAD", "MALLOC_CONF"].contains($0.key) }

    /// Runs `isokv allocator` with `environment` added (`ISOKV_MALLOC` empty, that is `auto`, unless given).
    func run(_ environment: [String: String]) async throws -> (status: Int32, output: Output?, stderr: String) {
        var env = ["ISOKV_MALLOC": ""]
        env.merge(environment) { $1 }
        let result = try await ChildProcess.run(try IsokvExecutable.path(), ["allocator"], environment: env)
        let output = result.status == 0 ? try JSONDecoder().decode(Output.self, from: Data(result.stdout.utf8)) : nil
        return (result.status, output, result.stderr)
    }

    @Test(
        "by default jemalloc with one arena is preloaded, and the loader's variables are taken back out",
        .enabled(if: jemallocCases, "libjemalloc2 is not installed (scripts/test installs it)"))
    func defaultIsJemalloc() async throws {
        let jemalloc = try #require(Self.jemalloc, "libjemalloc.so.2 not found in \(Self.libraryDirectories)")
        let r = try await run([:])
        let output = try #require(r.output, "\(r.stderr)")
        #expect(output.allocator.hasPrefix("jemalloc 5."), "\(output.allocator)")
        #expect(output.allocator.hasSuffix(" (preloaded: \(jemalloc))"), "\(output.allocator)")
        if (Self.inherited["MALLOC_CONF"] ?? "").isEmpty {
            #expect(output.allocator.contains(", 1 arena "), "\(output.allocator)")
        }
        #expect(output.environment == Self.inherited)
    }

    @Test(
        "the caller's LD_PRELOAD and MALLOC_CONF are kept for the children and MALLOC_CONF is obeyed",
        .enabled(if: jemallocCases, "libjemalloc2 is not installed (scripts/test installs it)"))
    func callerVariablesRestored() async throws {
        let libm = try #require(Self.library("libm.so.6"))
        let r = try await run(["LD_PRELOAD": libm, "MALLOC_CONF": "narenas:2"])
        let output = try #require(r.output, "\(r.stderr)")
        #expect(output.allocator.hasPrefix("jemalloc 5."), "\(output.allocator)")
        #expect(output.allocator.contains(", 2 arenas (preloaded: "), "\(output.allocator)")
        #expect(output.environment == ["LD_PRELOAD": libm, "MALLOC_CONF": "narenas:2"])
    }

    @Test(
        "a jemalloc the caller preloaded is used as it is, without a second start",
        .enabled(if: jemallocCases, "libjemalloc2 is not installed (scripts/test installs it)"))
    func callerPreloadedJemalloc() async throws {
        let jemalloc = try #require(Self.jemalloc)
        let r = try await run(["LD_PRELOAD": jemalloc, "ISOKV_MALLOC": "jemalloc"])
        #expect(r.status == 0, "\(r.stderr)")
        let output = try #require(r.output, "\(r.stderr)")
        #expect(output.allocator.hasSuffix("(loaded by the environment)"), "\(output.allocator)")
        var expected = Self.inherited
        expected["LD_PRELOAD"] = jemalloc
        #expect(output.environment == expected)
    }

    @Test("ISOKV_MALLOC=glibc keeps glibc with one arena (MALLOC_ARENA_MAX wins when set)")
    func glibcOnRequest() async throws {
        let r = try await run(["ISOKV_MALLOC": "glibc"])
        let output = try #require(r.output, "\(r.stderr)")
        if let arenas = ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] {
            #expect(output.allocator == "glibc, MALLOC_ARENA_MAX=\(arenas) (ISOKV_MALLOC=glibc)")
        } else {
            #expect(output.allocator == "glibc, 1 arena (ISOKV_MALLOC=glibc)")
        }
        let arenas = try await run(["ISOKV_MALLOC": "glibc", "MALLOC_ARENA_MAX": "4"])
        #expect(arenas.output?.allocator == "glibc, MALLOC_ARENA_MAX=4 (ISOKV_MALLOC=glibc)", "\(arenas.stderr)")
    }

    @Test("a choice that cannot be honoured exits with EX_CONFIG (78) and says why")
    func badChoices() async throws {
        let unknown = try await run(["ISOKV_MALLOC": "tcmalloc"])
        #expect(unknown.status == 78)
        #expect(
            unknown.stderr.contains("ISOKV_MALLOC=tcmalloc is not one of auto, jemalloc, glibc"), "\(unknown.stderr)")

        let missing = try await run(["ISOKV_MALLOC": "/nonexistent/libjemalloc.so.2"])
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("/nonexistent/libjemalloc.so.2: no readable file there"), "\(missing.stderr)")

        // A library that loads but is not an allocator: the second image finds glibc's malloc and refuses.
        let libm = try #require(Self.library("libm.so.6"))
        let notAllocator = try await run(["ISOKV_MALLOC": libm])
        #expect(notAllocator.status == 78)
        #expect(notAllocator.stderr.contains("malloc is not jemalloc's"), "\(notAllocator.stderr)")
    }
}
