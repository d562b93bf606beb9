/// The lab's report as data: a report holds sections; a section holds its checks (the correctness verdicts shown at
/// the top of the report), its blocks (tables, charts, notes, in order) and the results it was drawn from, as JSON.
/// Renderers (``ReportHTML``, ``ReportSVG``) turn it into a page; adapters (``AnomalyMatrix/reportSection()``,
/// ``LostUpdateReport``) turn an experiment's results into a section. Everything is `Codable`: the report's JSON is
/// the model itself, so a reader can redraw every chart from it.
///
/// ```swift
/// var section = ReportSection(id: "demo", title: "Demo", summary: "Two strategies.")
/// section.blocks.append(
///     .chart(
///         ReportChart(
///             id: "demo-throughput", title: "Throughput", caption: "Committed operations per second.",
///             kind: .bars(
///                 ReportBarChart(
///                     categoryAxis: "strategy", valueAxis: ReportAxis("operations per second", unit: .perSecond),
///                     categories: ["row-lock", "atomic-increment"],
///                     series: [ReportSeries("embedded", [1_200, 56_000])])))))
/// let report = LabReport(title: "isokv lab report", machine: .current(), parameters: [], sections: [section])
/// let html = ReportHTML.render(report)
/// ```
public struct LabReport: Hashable, Sendable, Codable {
    public var title: String
    /// Where and when it ran.
    public var machine: ReportMachine
    /// The run's parameters, in the order they are shown.
    public var parameters: [ReportParameter]
    public var sections: [ReportSection]

    public init(title: String, machine: ReportMachine, parameters: [ReportParameter], sections: [ReportSection]) {
        self.title = title
        self.machine = machine
        self.parameters = parameters
        self.sections = sections
    }

    /// Every check of every section, in section order.
    public var checks: [ReportCheck] { sections.flatMap(\.checks) }
    /// The checks that failed: a strategy that claims a guarantee and broke it, a cell the conformance library did
    /// not expect. Shown first, in red.
    public var failures: [ReportCheck] { checks.filter { $0.status == .fail } }
    /// Every chart, in the order the page shows them.
    public var charts: [ReportChart] {
        sections.flatMap { section in
            section.blocks.compactMap { block -> ReportChart? in
                if case .chart(let chart) = block { return chart }
                return nil
            }
        }
    }
}

/// One parameter of the run, e.g. `n = 100`.
public struct ReportParameter: Hashable, Sendable, Codable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One experiment's part of the report.
public struct ReportSection: Hashable, Sendable, Codable {
    /// The page anchor (`#id`); also the prefix of the section's chart ids.
    public var id: String
    public var title: String
    /// One paragraph: what was measured and how.
    public var summary: String
    /// Verdicts on the results, shown in the correctness box at the top of the report.
    public var checks: [ReportCheck]
    /// Tables, charts and notes, in the order shown.
    public var blocks: [ReportBlock]
    /// The experiment's results as it encodes them (its `Codable` result types), the data the blocks were drawn from.
    public var data: ReportJSON?

    public init(
        id: String, title: String, summary: String, checks: [ReportCheck] = [], blocks: [ReportBlock] = [],
        data: ReportJSON? = nil
    ) {
        self.id = id
        self.title = title
        self.summary = summary
        self.checks = checks
        self.blocks = blocks
        self.data = data
    }
}

/// A verdict on a result: a guarantee that held, one that broke, or a fact worth stating beside them.
public struct ReportCheck: Hashable, Sendable, Codable {
    public enum Status: String, Hashable, Sendable, Codable {
        /// The guarantee held.
        case pass
        /// The guarantee broke (reported loudly; `isokv lab report` exits 1).
        case fail = "FAIL"
        /// Not a guarantee: e.g. the unprotected baseline losing updates, as it is there to show.
        case info
    }

    public var status: Status
    /// What was checked, e.g. "row-lock (embedded) loses no update".
    public var subject: String
    /// The figures behind the verdict.
    public var detail: String

    public init(_ status: Status, _ subject: String, _ detail: String) {
        self.status = status
        self.subject = subject
        self.detail = detail
    }
}

/// One element of a section. In JSON, an object with one key naming the case: `{"chart": {…}}`.
public enum ReportBlock: Hashable, Sendable, Codable {
    case table(ReportTable)
    case chart(ReportChart)
    /// A paragraph of plain text.
    case note(String)

    private enum CodingKeys: String, CodingKey { case table, chart, note }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let table = try c.decodeIfPresent(ReportTable.self, forKey: .table) {
            self = .table(table)
        } else if let chart = try c.decodeIfPresent(ReportChart.self, forKey: .chart) {
            self = .chart(chart)
        } else {
            self = .note(try c.decode(String.self, forKey: .note))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .table(let table): try c.encode(table, forKey: .table)
        case .chart(let chart): try c.encode(chart, forKey: .chart)
        case .note(let text): try c.encode(text, forKey: .note)
        }
    }
}

/// A table of text cells, each with a tone that the renderer maps to a colour class.
public struct ReportTable: Hashable, Sendable, Codable {
    public var caption: String
    public var columns: [String]
    /// Each row has as many cells as `columns`; the first cell is the row's header.
    public var rows: [[ReportCell]]
    /// Swatches explaining the tones used, shown under the table (empty: none).
    public var legend: [ReportCell]

    public init(caption: String, columns: [String], rows: [[ReportCell]], legend: [ReportCell] = []) {
        self.caption = caption
        self.columns = columns
        self.rows = rows
        self.legend = legend
    }
}

/// A table cell: text and a tone.
public struct ReportCell: Hashable, Sendable, Codable, ExpressibleByStringLiteral {
    /// The colour a cell gets; the HTML class is `cell-<rawValue>`.
    public enum Tone: String, Hashable, Sendable, Codable, CaseIterable {
        case plain
        /// A guarantee held.
        case ok
        /// A guarantee broke: red, bold.
        case fail
        /// An anomaly occurred: red.
        case occurs
        /// Prevented by a transaction waiting for a lock: amber.
        case wait
        /// Prevented by a transaction aborting (with its code): blue.
        case abort
        /// Prevented by the snapshot: green.
        case snapshot
        /// Not run, not applicable.
        case muted
        /// A figure published elsewhere (the seed articles), not measured here.
        case published
    }

    public var text: String
    public var tone: Tone

    public init(_ text: String, _ tone: Tone = .plain) {
        self.text = text
        self.tone = tone
    }

    public init(stringLiteral value: String) { self.init(value) }
}

/// A chart: an id unique in the report (the SVG's `id`, `chart-<id>`), a title (the SVG's `<title>`), a caption
/// saying how to read it (its `<desc>`), and the data.
public struct ReportChart: Hashable, Sendable, Codable {
    /// In JSON, an object with one key naming the case: `{"bars": {…}}`.
    public enum Kind: Hashable, Sendable, Codable {
        /// Bars per category; several series give grouped bars with a legend.
        case bars(ReportBarChart)
        /// Lines over a numeric x axis.
        case lines(ReportLineChart)
        /// A grid of coloured cells, each with its value.
        case heatMap(ReportHeatMap)

        private enum CodingKeys: String, CodingKey { case bars, lines, heatMap }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            if let bars = try c.decodeIfPresent(ReportBarChart.self, forKey: .bars) {
                self = .bars(bars)
            } else if let lines = try c.decodeIfPresent(ReportLineChart.self, forKey: .lines) {
                self = .lines(lines)
            } else {
                self = .heatMap(try c.decode(ReportHeatMap.self, forKey: .heatMap))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .bars(let bars): try c.encode(bars, forKey: .bars)
            case .lines(let lines): try c.encode(lines, forKey: .lines)
            case .heatMap(let map): try c.encode(map, forKey: .heatMap)
            }
        }
    }

    public var id: String
    public var title: String
    public var caption: String
    public var kind: Kind

    public init(id: String, title: String, caption: String, kind: Kind) {
        self.id = id
        self.title = title
        self.caption = caption
        self.kind = kind
    }

    /// Whether the chart has nothing to draw (every value missing or not finite).
    public var isEmpty: Bool {
        switch kind {
        case .bars(let bars): return !bars.series.contains { $0.values.contains { $0?.isFinite == true } }
        case .lines(let lines): return !lines.series.contains { $0.points.contains { $0.x.isFinite && $0.y.isFinite } }
        case .heatMap(let map): return !map.values.contains { $0.contains { $0?.isFinite == true } }
        }
    }
}

/// An axis: its label and the unit its ticks are written in.
public struct ReportAxis: Hashable, Sendable, Codable {
    public enum Unit: String, Hashable, Sendable, Codable {
        /// A plain number: 12, 1.5k, 3.2M.
        case number
        /// Per second: 1.5k/s.
        case perSecond = "per-second"
        /// A duration given in nanoseconds: 850 ns, 12 µs, 4.6 ms, 1.2 s.
        case nanoseconds
        /// A duration given in milliseconds: 424 ms, 1.2 s.
        case milliseconds
        /// A fraction written as a percentage (0.25 → 25%).
        case fraction
    }

    public var label: String
    public var unit: Unit
    /// Positions by log₂ (line charts' x axis: clients 1 → 256).
    public var logarithmic: Bool

    public init(_ label: String, unit: Unit = .number, logarithmic: Bool = false) {
        self.label = label
        self.unit = unit
        self.logarithmic = logarithmic
    }
}

/// Bars per category, one bar per series in each category.
public struct ReportBarChart: Hashable, Sendable, Codable {
    public var categoryAxis: String
    public var valueAxis: ReportAxis
    public var categories: [String]
    /// Each series has one value per category (nil: not measured for that category).
    public var series: [ReportSeries]

    public init(categoryAxis: String, valueAxis: ReportAxis, categories: [String], series: [ReportSeries]) {
        self.categoryAxis = categoryAxis
        self.valueAxis = valueAxis
        self.categories = categories
        self.series = series
    }
}

/// A named row of values; `published` marks figures published elsewhere (drawn hatched, named as published).
public struct ReportSeries: Hashable, Sendable, Codable {
    public var name: String
    public var values: [Double?]
    public var published: Bool

    public init(_ name: String, _ values: [Double?], published: Bool = false) {
        self.name = name
        self.values = values
        self.published = published
    }
}

/// Lines over a numeric x axis.
public struct ReportLineChart: Hashable, Sendable, Codable {
    public var xAxis: ReportAxis
    public var yAxis: ReportAxis
    public var series: [ReportLineSeries]

    public init(xAxis: ReportAxis, yAxis: ReportAxis, series: [ReportLineSeries]) {
        self.xAxis = xAxis
        self.yAxis = yAxis
        self.series = series
    }
}

public struct ReportLineSeries: Hashable, Sendable, Codable {
    public var name: String
    public var points: [ReportPoint]

    public init(_ name: String, _ points: [ReportPoint]) {
        self.name = name
        self.points = points
    }
}

public struct ReportPoint: Hashable, Sendable, Codable {
    public var x: Double
    public var y: Double

    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// A grid: rows × columns, each cell coloured by its value on one scale and labelled with it.
public struct ReportHeatMap: Hashable, Sendable, Codable {
    public var rowAxis: String
    public var columnAxis: String
    public var valueAxis: ReportAxis
    public var rows: [String]
    public var columns: [String]
    /// `values[row][column]`; nil: not measured.
    public var values: [[Double?]]

    public init(
        rowAxis: String, columnAxis: String, valueAxis: ReportAxis, rows: [String], columns: [String],
        values: [[Double?]]
    ) {
        self.rowAxis = rowAxis
        self.columnAxis = columnAxis
        self.valueAxis = valueAxis
        self.rows = rows
        self.columns = columns
        self.values = values
    }
}
