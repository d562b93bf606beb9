import IsoKVStorage
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The crash child's failpoint: `ISOKV_FAILPOINT=<point>[@recovery|@running]:<n>[:<bytes>]` makes the child
/// SIGKILL itself at the `n`-th time it reaches `<point>` (a ``FaultPoint`` name: `walWrite`, `walSync`,
/// `segmentRotate`, `checkpointWrite`, `checkpointSync`, `checkpointRename`, `directorySync`, `tailTruncate`),
/// counting only hits in that phase when one is given (`recovery`: before the store is open, i.e. before `READY`;
/// `running`: after). At a write point the first `<bytes>` bytes (default 0, never the whole write) reach the file
/// first, leaving a torn tail. Just before dying it prints `FAILPOINT <point> <phase> <n>`, so the parent knows the
/// kill came from there. Unset: no failpoint (the parent kills the child at a random moment instead).
///
/// ```
/// ISOKV_FAILPOINT=walWrite@running:12:9 isokv crash-child /tmp/d --engine
/// ```
struct CrashFailpoint: Sendable {
    enum Phase: String, Sendable { case recovery, running }

    let point: FaultPoint
    let phase: Phase?
    let hit: Int
    let bytes: Int

    static let points: [FaultPoint] = [
        .walWrite, .walSync, .segmentRotate, .checkpointWrite, .checkpointSync, .checkpointRename, .directorySync,
        .tailTruncate
    ]

    struct Invalid: Error, CustomStringConvertible {
        let text: String
        var description: String {
            "ISOKV_FAILPOINT=\(text): expected <point>[@recovery|@running]:<n>[:<bytes>], point one of "
                + CrashFailpoint.points.map { "\($0)" }.joined(separator: ", ")
        }
    }

    /// Parses `ISOKV_FAILPOINT`; nil when unset or empty.
    static func fromEnvironment() throws -> CrashFailpoint? {
        guard let raw = getenv("ISOKV_FAILPOINT") else { return nil }
        let text = String(cString: raw)
        if text.isEmpty { return nil }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 2 || fields.count == 3 else { throw Invalid(text: text) }
        let where_ = fields[0].split(separator: "@", omittingEmptySubsequences: false)
        guard where_.count <= 2, let point = points.first(where: { "\($0)" == where_[0] }),
            let hit = Int(fields[1]), hit >= 1
        else { throw Invalid(text: text) }
        var phase: Phase?
        if where_.count == 2 {
            guard let p = Phase(rawValue: String(where_[1])) else { throw Invalid(text: text) }
            phase = p
        }
        var bytes = 0
        if fields.count == 3 {
            guard let b = Int(fields[2]), b >= 0 else { throw Invalid(text: text) }
            bytes = b
        }
        return CrashFailpoint(point: point, phase: phase, hit: hit, bytes: bytes)
    }
}

/// Counts the failpoint's hits and tells whether the store is open yet (the phase).
final class CrashSwitch: Sendable {
    let failpoint: CrashFailpoint?
    private let open = Atomic<Bool>(false)
    private let hits = Atomic<Int>(0)

    init(_ failpoint: CrashFailpoint?) { self.failpoint = failpoint }

    /// Call once the store reports ready (after `open` returned).
    func markOpen() { open.store(true, ordering: .releasing) }

    /// The hook to install in the store's options (nil without a failpoint: zero cost).
    var hook: FaultHook? {
        guard let failpoint else { return nil }
        return FaultHook { [self] point in
            guard point == failpoint.point else { return nil }
            let phase: CrashFailpoint.Phase = open.load(ordering: .acquiring) ? .running : .recovery
            if let wanted = failpoint.phase, wanted != phase { return nil }
            let n = hits.add(1, ordering: .relaxed).newValue
            guard n == failpoint.hit else { return nil }
            emit("FAILPOINT \(point) \(phase) \(n)\n")
            return .crashMidWrite(bytes: failpoint.bytes)
        }
    }
}
