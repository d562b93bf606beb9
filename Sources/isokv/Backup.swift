import ArgumentParser
import IsoKV
import IsoKVStorage

/// `isokv backup <dir> <dest>`: an online, consistent copy of a data directory into a new directory.
///
/// Works whether or not a store has `<dir>` open (in another process): the files are read without taking the
/// directory lock, as `isokv check` reads them, and the copy is the latest checkpoint plus every whole WAL record
/// found — a prefix of the commit history, never half a transaction. `<dest>` gets a checkpoint at that commit
/// number and an empty WAL, all fsynced; `Database.open(path: dest)` opens it. Exit 1 with the reason on stderr
/// if `<dir>` is corrupt or `<dest>` already holds a store.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a data directory consistently (online) into a new directory that Database.open can open."
    )

    @Argument(help: "The data directory to copy (may be open in another process).")
    var directory: String
    @Argument(help: "The new directory to create (must not hold a store).")
    var destination: String

    func run() async throws {
        do {
            let summary = try await Database.backup(directory: directory, to: destination)
            print(
                "backup of \(directory) into \(destination): \(summary.liveKeys) live keys, last commit \(summary.lastCommit)"
            )
        } catch {
            printError("backup failed: \(error)")
            throw ExitCode(1)
        }
    }
}
