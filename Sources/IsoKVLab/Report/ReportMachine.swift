import Foundation

/// The machine and build a report ran on: the context every figure in it needs.
public struct ReportMachine: Hashable, Sendable, Codable {
    /// Logical processors available to the process.
    public var cores: Int
    /// Physical memory, in bytes.
    public var memoryBytes: UInt64
    /// The operating system (`PRETTY_NAME` of `/etc/os-release` where there is one).
    public var operatingSystem: String
    /// The kernel as `uname` gives it, e.g. "Linux 6.1.0".
    public var kernel: String
    /// The Swift language version the binary was compiled with.
    public var swift: String
    /// `debug` or `release`: debug builds are an order of magnitude slower.
    public var build: String
    /// The 1-, 5- and 15-minute load averages when the run started (`/proc/loadavg`), if known: a loaded machine
    /// gives slower, noisier figures.
    public var loadAverage: String?
    /// When the run started, ISO 8601 in UTC.
    public var date: String

    public init(
        cores: Int, memoryBytes: UInt64, operatingSystem: String, kernel: String, swift: String, build: String,
        loadAverage: String?, date: String
    ) {
        self.cores = cores
        self.memoryBytes = memoryBytes
        self.operatingSystem = operatingSystem
        self.kernel = kernel
        self.swift = swift
        self.build = build
        self.loadAverage = loadAverage
        self.date = date
    }

    /// This machine, now.
    public static func current(date: Date = Date()) -> ReportMachine {
        let info = ProcessInfo.processInfo
        var system = utsname()
        uname(&system)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        let osRelease = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        let prettyName = osRelease.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
            .map { String($0.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .map { $0.split(separator: " ").prefix(3).joined(separator: " ") }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        #if DEBUG
            let build = "debug"
        #else
            let build = "release"
        #endif
        return ReportMachine(
            cores: info.activeProcessorCount, memoryBytes: info.physicalMemory,
            operatingSystem: prettyName ?? info.operatingSystemVersionString,
            kernel: "\(field(system.sysname)) \(field(system.release))", swift: swiftVersion, build: build,
            loadAverage: load, date: formatter.string(from: date))
    }

    /// The language version of the compiler that built this binary.
    static var swiftVersion: String {
        #if swift(>=6.5)
            return "6.5 or later"
        #elseif swift(>=6.4)
            return "6.4"
        #elseif swift(>=6.3)
            return "6.3"
        #elseif swift(>=6.2)
            return "6.2"
        #elseif swift(>=6.1)
            return "6.1"
        #else
            return "6.0"
        #endif
    }
}
