import ArgumentParser
#if canImport(Glibc)
    import Glibc
#endif
import IsoKV
import IsoKVStorage

/// `isokv check <dir>`: verifies a data directory's checkpoint and WAL without modifying it, then recovers it into
/// memory (without its lock) and runs the engine's consistency checker (`Database.check`) on the result.
///
/// Exit status 0 when recovery would succeed (a torn tail after a crash is reported but is not corruption) and the
/// recovered state is consistent; 1 with the first storage problem's file and offset, or with every finding of the
/// engine check, on stderr otherwise.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify a data directory (checkpoint, WAL segments, and the engine's invariants after recovery); "
            + "exit 1 on corruption or on any finding."
    )

    @Argument(help: "The data directory.")
    var directory: String

    func run() throws {
        do {
            let state = try WriteAheadLog.check(directory: directory)
            print(
                "checkpoint: \(state.checkpointSequence == 0 && state.checkpointEntries.isEmpty ? "none" : "sequence \(state.checkpointSequence), \(state.checkpointEntries.count) entries")"
            )
            for s in state.segments {
                print("segment \(s.file): \(s.records) records, \(s.bytes) valid bytes, max sequence \(s.maxSequence)")
            }
            print("commits to replay after the checkpoint: \(state.commits.count); last sequence \(state.lastSequence)")
            if let tail = state.truncatedTail {
                print(
                    "torn tail (a crash mid-write; open will cut it): \(tail.file) at offset \(tail.offset), \(tail.droppedBytes) bytes"
                )
            }
            // The engine's view: what `Database.open` would serve, and its consistency check.
            let (engine, report) = try Database.check(path: directory)
            print("engine: \(engine.liveKeys) live keys, last commit sequence \(engine.lastCommit)")
            guard report.isConsistent else {
                printError("engine check: \(report)")
                throw ExitCode(1)
            }
            print("engine check: \(report)")
            print("ok")
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("corrupt: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    var stderr = StandardError()
    print(message, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress!, $0.count) }
            if n <= 0 { return }
            bytes.removeFirst(n)
        }
    }
}
