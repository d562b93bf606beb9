import Foundation

/// A benchmark or lab result printed either as an aligned text table or as JSON.
///
/// Every bench/lab command builds one `Report`: the workload parameters, one row per measurement, and (for JSON) a
/// `Codable` record per row whose schema the README documents.
struct Report<Record: Encodable> {
    /// What was run, e.g. "isokv bench maps".
    var title: String
    /// Parameters of the run (threads, duration, keys, …), printed above the table and included in JSON.
    var parameters: [(String, String)]
    /// Column headers of the table.
    var columns: [String]
    /// Table rows, each as many cells as `columns`.
    var rows: [[String]] = []
    /// One JSON record per row.
    var records: [Record] = []
    /// Lines printed under the table (how to read it, baselines).
    var notes: [String] = []

    mutating func add(_ cells: [String], _ record: Record) {
        precondition(cells.count == columns.count, "row has \(cells.count) cells for \(columns.count) columns")
        rows.append(cells)
        records.append(record)
    }

    func render(_ format: OutputFormat) throws -> String {
        switch format {
        case .table: return renderTable()
        case .json: return try renderJSON()
        }
    }

    func renderTable() -> String {
        var out = "\(title)\n"
        for (k, v) in parameters { out += "  \(k): \(v)\n" }
        var widths = columns.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                // Left-align the first column (names), right-align figures.
                i == 0
                    ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }
        out += line(columns) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        for note in notes { out += note + "\n" }
        return out
    }

    func renderJSON() throws -> String {
        let env = ReportEnvelope(
            title: title, parameters: Dictionary(parameters, uniquingKeysWith: { $1 }), results: records)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try enc.encode(env), as: UTF8.self)
    }
}

/// Human formatting of figures.
enum Figure {
    /// 12345678 → "12.35M".
    static func rate(_ perSecond: Double) -> String {
        switch perSecond {
        case 1e9...: return String(format: "%.2fG", perSecond / 1e9)
        case 1e6...: return String(format: "%.2fM", perSecond / 1e6)
        case 1e3...: return String(format: "%.1fk", perSecond / 1e3)
        default: return String(format: "%.0f", perSecond)
        }
    }

    /// A ratio to a baseline, "1.00x".
    static func ratio(_ r: Double) -> String { r.isFinite ? String(format: "%.2fx", r) : "-" }

    /// Nanoseconds → "850ns", "12.3µs", "4.56ms".
    static func duration(nanoseconds ns: Double) -> String {
        switch ns {
        case 1e6...: return String(format: "%.2fms", ns / 1e6)
        case 1e3...: return String(format: "%.1fµs", ns / 1e3)
        default: return String(format: "%.0fns", ns)
        }
    }
}

/// The JSON shape of every report: `{"title", "parameters": {name: value}, "results": [record…]}`.
struct ReportEnvelope<Record: Encodable>: Encodable {
    var title: String
    var parameters: [String: String]
    var results: [Record]
}
