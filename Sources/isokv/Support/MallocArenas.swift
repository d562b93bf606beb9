#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// glibc's malloc arenas, set once at the start of the `isokv` process.
///
/// glibc gives threads separate arenas; memory freed into one arena is reused only by the threads attached to it.
/// Under a steady update load the engine allocates each new version on one thread and frees old ones on another,
/// so with several arenas resident memory creeps up to about 1.2× its single-arena level and stays there (measured
/// with `isokv bench memory`: 4.15× the raw data after the load, 5.07× after the soak with glibc's default, flat
/// 4.15× with one arena; on a later binary 2.44× with one, 2.89× with two or sixteen). Small allocations are served
/// by each thread's cache first; larger ones (above glibc's 1 KiB per-thread cache) all take the one arena's lock.
/// A scan's result array is one (48 bytes a row): `bench engine --workload ycsb-e`'s array scans in transactions
/// ran 1.4× faster with `MALLOC_ARENA_MAX=8` (234–238k → 326–363k ops/s, same binary), while the scans that visit
/// rows in place did not move. The memory bound is kept; an application embedding IsoKV gets glibc's default.
/// `MALLOC_ARENA_MAX`, when set, wins (glibc reads it itself); `bench engine` and `bench memory` print the setting.
///
/// ```swift
/// let setting = MallocArenas.configure()   // "1 (isokv default)" on glibc unless MALLOC_ARENA_MAX is set
/// ```
enum MallocArenas {
    /// Applies the default unless the environment sets one; returns what is in effect, for reports.
    @discardableResult
    static func configure() -> String {
        #if canImport(Glibc)
            if let set = ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] { return "\(set) (MALLOC_ARENA_MAX)" }
            // `mallopt` is not in the Glibc module (malloc.h is not part of it): look it up by name.
            typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
            let mArenaMax: Int32 = -8  // M_ARENA_MAX in glibc's malloc.h
            guard let symbol = dlsym(nil, "mallopt") else { return "glibc default (no mallopt)" }
            let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
            return mallopt(mArenaMax, 1) == 1 ? "1 (isokv default)" : "glibc default (mallopt refused)"
        #else
            return "the platform's default"
        #endif
    }

    /// The setting in effect (after ``configure()``): what the reports print.
    static let setting = configure()
}
