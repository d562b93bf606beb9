import ArgumentParser
import Foundation

/// `isokv allocator` (hidden): prints, as JSON, the allocator in effect (``Allocator``) and the values of the
/// variables the re-execution sets, as a process started by `isokv` would inherit them. The tests of the allocator
/// choice run it; an operator can too, to see what `serve` will use.
struct AllocatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allocator",
        abstract: "Print the memory allocator in effect and the environment child processes inherit, as JSON.",
        shouldDisplay: false
    )

    struct Output: Encodable {
        var allocator: String
        /// The loader's variables and the re-execution's own, as they are now (absent: not set).
        var environment: [String: String]
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let names = Allocator.managedVariables
        let output = Output(
            allocator: Allocator.setting,
            environment: environment.filter { names.contains($0.key) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(output), as: UTF8.self))
    }
}
