import IsoKV
import IsoKVStorage

extension CrashChild {
    /// `crash-child --engine`: bank transfers through `Database.open` (see the type's doc comment).
    func runEngine() async throws {
        let options = Database.OpenOptions(
            durability: .fsync, checkpointWALBytes: checkpointBytes,
            segmentBytes: segmentBytes)
        let db = try await Database.open(path: directory, options: options)
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

    /// One transfer, retried on `40001`/`40P01`; returns `<seq> <from> <seq> <fromBalance> <to> <seq> <toBalance>`
    /// once the commit is acknowledged (durable and visible).
    static func transfer(_ db: Database, from: Int, to: Int, amount: Int64) async throws -> String {
        while true {
            let tx = try await db.begin(.snapshot)
            do {
                // Lock in key order so two transfers never deadlock (a deadlock would be retried anyway).
                let (a, b) = (engineKey(from), engineKey(to))
                let first = min(from, to) == from ? a : b
                let second = first == a ? b : a
                _ = try await tx.lock(first, .forUpdate)
                _ = try await tx.lock(second, .forUpdate)
                let na = (try await tx.get(a)?.int64 ?? 0) - amount
                let nb = (try await tx.get(b)?.int64 ?? 0) + amount
                try await tx.put(a, Bytes(na))
                try await tx.put(b, Bytes(nb))
                guard let seq = try await tx.commitReturningVersion() else { continue }
                return "\(seq) \(from) \(seq) \(na) \(to) \(seq) \(nb)"
            } catch let error as IsoKVError where error.isRetryable {
                try await tx.rollback()
            }
        }
    }
}
