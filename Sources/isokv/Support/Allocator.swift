#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// The `isokv` process's memory allocator: jemalloc when it is installed, else glibc limited to one arena.
///
/// Why not glibc's default: glibc gives threads separate arenas, and memory freed into one arena is reused only by
/// the threads attached to it. Under a steady update load the engine allocates each version on one thread and frees
/// old ones on another, so resident memory creeps up (`isokv bench memory`: 2.89× the raw data after the soak with
/// two or sixteen arenas, 2.44× and flat with one). Why not glibc with one arena: every allocation above glibc's
/// 1 KiB per-thread cache takes that arena's lock, which sleeps in the kernel at once when the other thread holds
/// it. A scan's result array is one (48 bytes a row): array scans in transactions ran at 0.30× LMDB with one arena
/// and 0.58× with jemalloc (`scripts/bench-engine-vs-lmdb --workloads ycsb-e`), whose per-thread caches hold
/// blocks up to 32 KiB. jemalloc with one arena keeps the memory figure (2.42× in memory, 2.46× durable).
///
/// jemalloc replaces `malloc` only if it is loaded before glibc, so `configure()` re-executes the binary
/// (`/proc/self/exe`, same process id, nothing started yet) with `LD_PRELOAD` naming `libjemalloc.so.2` and
/// `MALLOC_CONF=narenas:1` unless the environment sets a non-empty `MALLOC_CONF`. The second image puts both variables back as
/// they were, so processes `isokv` starts (nginx and wrk in `bench http`, PostgreSQL's tools) keep their own
/// allocator. Linking jemalloc instead would make it a build dependency of every checkout.
///
/// `ISOKV_MALLOC` chooses: `auto` (the default: jemalloc when found, else glibc with one arena), `jemalloc` (fail if
/// it is not found), `glibc`, or the path of a jemalloc library. `MALLOC_ARENA_MAX`, when set, wins over the one
/// glibc arena. If `malloc` is already someone else's (an `LD_PRELOAD` of the caller's, a sanitizer's
/// interceptors) it is left alone. `bench engine`, `bench memory` and `bench http` print the setting among their
/// parameters, and `serve` in its "listening on" line.
///
/// ```swift
/// let setting = Allocator.configure()  // "jemalloc 5.3.0, 1 arena (preloaded: …)" or "glibc, 1 arena (…)"
/// ```
enum Allocator {
    /// The environment variable that chooses the allocator.
    static let choiceVariable = "ISOKV_MALLOC"
    /// Set by the re-execution only: the library it preloaded. Its presence is what stops a second re-execution.
    static let preloadedVariable = "ISOKV_MALLOC_PRELOADED"
    /// Set by the re-execution when the variable existed: its original value, restored by the second image.
    static func savedVariable(_ name: String) -> String { "ISOKV_MALLOC_SAVED_\(name)" }
    /// The variables the re-execution sets and the second image restores.
    static let loaderVariables = ["LD_PRELOAD", "MALLOC_CONF"]
    /// Every variable the re-execution may set: the loader's, the marker, and the saved originals.
    static var managedVariables: [String] { loaderVariables + [preloadedVariable] + loaderVariables.map(savedVariable) }
    /// jemalloc's configuration when the environment gives none: one arena, as with glibc (the memory goal).
    static let defaultJemallocConfiguration = "narenas:1"

    /// What `ISOKV_MALLOC` asks for.
    enum Choice: Equatable {
        case auto, jemalloc, glibc
        case library(String)

        /// Parses the variable's value; nil when it is none of the accepted forms.
        init?(_ value: String?) {
            switch value {
            case nil, "", "auto": self = .auto
            case "jemalloc": self = .jemalloc
            case "glibc": self = .glibc
            case let path? where path.hasPrefix("/"): self = .library(path)
            default: return nil
            }
        }

        /// True when the user named an allocator, so not finding it is an error rather than a fallback.
        var isExplicit: Bool { self != .auto && self != .glibc }
    }

    /// A configuration error: printed to standard error, then the process exits with `EX_CONFIG` (78).
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Applies the choice (possibly re-executing the process) and returns what is in effect, for reports.
    static func configure() -> String {
        do {
            return try configureOrThrow()
        } catch {
            FileHandle.standardError.write(Data("isokv: \(error)\n".utf8))
            exit(78)
        }
    }

    /// The setting in effect (after ``configure()``): what the reports print.
    static let setting = configure()

    static func configureOrThrow() throws(Failure) -> String {
        #if os(Linux)
            let environment = ProcessInfo.processInfo.environment
            guard let choice = Choice(environment[choiceVariable]) else {
                throw Failure(
                    description:
                        "\(choiceVariable)=\(environment[choiceVariable] ?? "") is not one of auto, jemalloc, glibc "
                        + "or the absolute path of a jemalloc library")
            }
            if let preloaded = environment[preloadedVariable] {
                // The second image: put the loader's variables back before anything can start a child process.
                for (name, value) in restoredVariables(environment) {
                    if let value { setenv(name, value, 1) } else { unsetenv(name) }
                }
                if let jemalloc = Jemalloc.active() {
                    return "\(jemalloc.summary) (preloaded: \(preloaded))"
                }
                if choice.isExplicit {
                    throw Failure(description: "\(preloaded) was preloaded but malloc is not jemalloc's")
                }
                return glibcOneArena(environment, reason: "\(preloaded) did not load")
            }
            if let owner = mallocOwner(), !isGlibc(owner) {
                if let jemalloc = Jemalloc.active() { return "\(jemalloc.summary) (loaded by the environment)" }
                if choice.isExplicit {
                    throw Failure(description: "malloc is already provided by \(owner); cannot load jemalloc")
                }
                return "malloc of \(owner) (left as is)"
            }
            let library: String
            switch choice {
            case .library(let path):
                guard access(path, R_OK) == 0 else {
                    throw Failure(description: "\(choiceVariable)=\(path): no readable file there")
                }
                library = path
            case .auto, .jemalloc:
                guard let found = findJemalloc() else {
                    if choice == .jemalloc {
                        throw Failure(
                            description: "\(choiceVariable)=jemalloc: libjemalloc.so.2 not found in "
                                + searchDirectories().joined(separator: ", ")
                                + " (Debian/Ubuntu: apt-get install libjemalloc2)")
                    }
                    return glibcOneArena(environment, reason: "jemalloc not installed")
                }
                library = found
            case .glibc:
                return glibcOneArena(environment, reason: "\(choiceVariable)=glibc")
            }
            for (name, value) in preloadVariables(environment, library: library) {
                setenv(name, value, 1)
            }
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // Still here: the re-execution failed. Undo and go on with glibc (or fail if jemalloc was asked for).
            let failure = String(cString: strerror(errno))
            for name in managedVariables {
                if let value = environment[name] { setenv(name, value, 1) } else { unsetenv(name) }
            }
            if choice.isExplicit { throw Failure(description: "could not re-execute with \(library): \(failure)") }
            return glibcOneArena(environment, reason: "re-execution failed: \(failure)")
        #else
            return "the platform's default"
        #endif
    }

    /// The variables the re-execution sets: the library first in `LD_PRELOAD`, jemalloc's default configuration
    /// unless `MALLOC_CONF` is set, the marker, and the original values of the variables it changes.
    static func preloadVariables(_ environment: [String: String], library: String) -> [(String, String)] {
        var set: [(String, String)] = []
        for name in loaderVariables {
            if let value = environment[name] { set.append((savedVariable(name), value)) }
        }
        let preload = environment["LD_PRELOAD"].map { $0.isEmpty ? library : "\(library):\($0)" } ?? library
        set.append(("LD_PRELOAD", preload))
        if (environment["MALLOC_CONF"] ?? "").isEmpty { set.append(("MALLOC_CONF", defaultJemallocConfiguration)) }
        set.append((preloadedVariable, library))
        return set
    }

    /// What the second image sets (a value) or removes (nil) so that its environment is the caller's again.
    static func restoredVariables(_ environment: [String: String]) -> [(String, String?)] {
        var changes: [(String, String?)] = [(preloadedVariable, nil)]
        for name in loaderVariables {
            changes.append((name, environment[savedVariable(name)]))
            changes.append((savedVariable(name), nil))
        }
        return changes
    }

    #if os(Linux)
        /// glibc with one arena (unless `MALLOC_ARENA_MAX` sets another number, which glibc then applies itself).
        static func glibcOneArena(_ environment: [String: String], reason: String) -> String {
            if let set = environment["MALLOC_ARENA_MAX"] { return "glibc, MALLOC_ARENA_MAX=\(set) (\(reason))" }
            // `mallopt` is not in the Glibc module (malloc.h is not part of it): look it up by name.
            typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
            let mArenaMax: Int32 = -8  // M_ARENA_MAX in glibc's malloc.h
            guard let symbol = dlsym(nil, "mallopt") else { return "glibc, default arenas (no mallopt; \(reason))" }
            let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
            return mallopt(mArenaMax, 1) == 1
                ? "glibc, 1 arena (\(reason))" : "glibc, default arenas (mallopt refused; \(reason))"
        }

        /// The file that defines the `malloc` this process calls.
        static func mallocOwner() -> String? {
            dlsym(nil, "malloc").flatMap(mappedFile(containing:))
        }

        /// The file mapped at `address`, from `/proc/self/maps` (`dladdr` is a GNU extension the Glibc module does
        /// not export).
        static func mappedFile(containing address: UnsafeMutableRawPointer) -> String? {
            guard let maps = procFile("/proc/self/maps") else { return nil }
            let target = UInt(bitPattern: address)
            for line in maps.split(separator: "\n") {
                // "start-end perms offset dev inode path"
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                guard fields.count == 6, let dash = fields[0].firstIndex(of: "-"),
                    let start = UInt(fields[0][..<dash], radix: 16),
                    let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16)
                else { continue }
                if start <= target && target < end {
                    let path = fields[5].trimmingCharacters(in: .whitespaces)
                    return path.hasPrefix("/") ? path : nil
                }
            }
            return nil
        }

        /// A file of `/proc`, read to its end (`String(contentsOfFile:)` stops after 4 KiB there: the file reports
        /// a size of 0).
        static func procFile(_ path: String) -> String? {
            guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
            defer { try? handle.close() }
            guard let data = try? handle.readToEnd() else { return nil }
            return String(decoding: data, as: UTF8.self)
        }

        static func isGlibc(_ file: String) -> Bool {
            (file as NSString).lastPathComponent.hasPrefix("libc.so")
        }

        /// The directories searched for `libjemalloc.so.2`: the one glibc was loaded from (the multiarch
        /// directory), its `/usr` twin, and the usual library directories.
        static func searchDirectories() -> [String] {
            var directories: [String] = []
            if let libc = mallocOwner().map({ ($0 as NSString).deletingLastPathComponent }) {
                directories.append(libc)
                if !libc.hasPrefix("/usr/") { directories.append("/usr" + libc) }
            }
            directories += ["/usr/local/lib", "/usr/lib64", "/usr/lib"]
            var seen = Set<String>()
            return directories.filter { seen.insert($0).inserted }
        }

        static func findJemalloc() -> String? {
            searchDirectories().map { $0 + "/libjemalloc.so.2" }.first { access($0, R_OK) == 0 }
        }
    #endif

    /// Gives freed memory back to the system where the allocator can (before a memory measurement).
    static func releaseFreeMemory() {
        #if os(Linux)
            if Jemalloc.active() != nil {
                Jemalloc.purgeAllArenas()
            } else if let symbol = dlsym(nil, "malloc_trim") {
                typealias MallocTrim = @convention(c) (Int) -> Int32
                _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
            }
        #endif
    }
}

#if os(Linux)
    /// jemalloc's control interface (`mallctl`), reached by name: present only when jemalloc provides `malloc`.
    enum Jemalloc {
        typealias MallCtl =
            @convention(c) (
                UnsafePointer<CChar>?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?, UnsafeMutableRawPointer?,
                Int
            ) -> Int32

        struct Info {
            var version: String
            var arenas: UInt32
            var summary: String { "jemalloc \(version), \(arenas) arena\(arenas == 1 ? "" : "s")" }
        }

        /// `mallctl`, if the library that defines it also defines the `malloc` this process calls (an unprefixed
        /// jemalloc loaded after glibc exports `mallctl` without serving any allocation).
        static var mallctl: MallCtl? {
            guard let owner = Allocator.mallocOwner(), let symbol = dlsym(nil, "mallctl"),
                Allocator.mappedFile(containing: symbol) == owner
            else { return nil }
            return unsafeBitCast(symbol, to: MallCtl.self)
        }

        /// The version and arena count of the jemalloc that serves `malloc`, or nil if another allocator does.
        static func active() -> Info? {
            guard let mallctl else { return nil }
            var version: UnsafePointer<CChar>?
            var size = MemoryLayout<UnsafePointer<CChar>?>.size
            guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return nil }
            var arenas: UInt32 = 0
            size = MemoryLayout<UInt32>.size
            guard mallctl("opt.narenas", &arenas, &size, nil, 0) == 0 else { return nil }
            // "5.3.0-0-g54eaed1d…": the release is the part before the build suffix.
            let full = String(cString: version)
            let release = full.split(separator: "-", maxSplits: 1).first.map(String.init) ?? full
            return Info(version: release, arenas: arenas)
        }

        /// Returns every arena's unused dirty pages to the system (`arena.<MALLCTL_ARENAS_ALL>.purge`).
        static func purgeAllArenas() {
            _ = mallctl?("arena.4096.purge", nil, nil, nil, 0)
        }
    }
#endif
