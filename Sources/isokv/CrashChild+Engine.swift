@_spi(Testing) import IsoKV
import IsoKVStorage

extension CrashChild {
    /// `crash-child --engine`: bank transfers through `Database.open` (see the type's doc comment).
    func runEngine(_ crash: CrashSwitch) async throws {
        var options = Database.OpenOptions(
            durability: try walDurability(), checkpointWALBytes: checkpointBytes,
            segmentBytes: segmentBytes)
        options.faults = crash.hook
        let db = try await Database.open(path: directory, options: options)
        crash.markOpen()
        let accounts = self.accounts, initial = self.initialBalance
        if db.statistics().lastCommit == 0 {
            let tx = try await db.begin(.snapshot)
            for i in 0..<accounts { try await tx.put(Self.engineKey(i), Bytes(initial)) }
            let seq = try await tx.commitReturningVersion() ?? 0
            emit("INIT \(seq)\n")
        }
        emit("READY \(db.statistics().lastCommit)\n")
        try await Self.runTransfers(writers: writers, accounts: accounts) { from, to, amount in
            try await Self.transfer(db, from: from, to: to, amount: amount)
        }
    }

    static func engineKey(_ i: Int) -> Bytes { Bytes("acct\(i)") }

    /// One transfer, retried on `40001`/`40P01` (each retry prints `RETRY <code>`); returns
    /// `<seq> <from> <seq> <fromBalance> <to> <seq> <toBalance>` once the commit is acknowledged (durable and
    /// visible).
    ///
    /// Each attempt takes one of two paths at random, so that both retryable failures happen: it locks the two
    /// accounts `FOR UPDATE` in transfer order (not key order: two opposite transfers deadlock, `40P01`), or it
    /// reads and writes them without locks (a concurrent committed write to either is a first-updater-wins
    /// conflict, `40001`).
    static func transfer(_ db: Database, from: Int, to: Int, amount: Int64) async throws -> String {
        var rng = SystemRandomNumberGenerator()
        while true {
            let tx = try await db.begin(.snapshot)
            do {
                let (a, b) = (engineKey(from), engineKey(to))
                if Bool.random(using: &rng) {
                    _ = try await tx.lock(a, .forUpdate)
                    _ = try await tx.lock(b, .forUpdate)
                }
                let na = (try await tx.get(a)?.int64 ?? 0) - amount
                let nb = (try await tx.get(b)?.int64 ?? 0) + amount
                try await tx.put(a, Bytes(na))
                try await tx.put(b, Bytes(nb))
                guard let seq = try await tx.commitReturningVersion() else { continue }
                return "\(seq) \(from) \(seq) \(na) \(to) \(seq) \(nb)"
            } catch let error as IsoKVError where error.isRetryable {
                emit("RETRY \(error.code.rawValue)\n")
                try await tx.rollback()
            }
        }
    }
}
