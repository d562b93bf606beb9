import Foundation
import IsoKVConformance
import IsoKVCore
import IsoKVLab
import IsoKVTestSupport
import Testing

@Suite("Lab report rendering")
struct ReportTests {
    // MARK: fixtures

    static func bars(_ id: String, _ series: [ReportSeries], categories: [String] = ["a", "b"]) -> ReportChart {
        ReportChart(
            id: id, title: "Bars \(id)", caption: "caption of \(id)",
            kind: .bars(
                ReportBarChart(
                    categoryAxis: "strategy", valueAxis: ReportAxis("ops", unit: .perSecond), categories: categories,
                    series: series)))
    }

    static let machine = ReportMachine(
        cores: 2, memoryBytes: 8 << 30, operatingSystem: "Test OS", kernel: "Linux 6", swift: "6.3", build: "debug",
        loadAverage: "1.0 1.0 1.0", date: "2026-12-02T00:00:00Z")

    static func report(_ sections: [ReportSection]) -> LabReport {
        LabReport(
            title: "report", machine: machine, parameters: [ReportParameter("seed", "1")], sections: sections)
    }

    /// Every chart kind, tables with every tone, notes.
    static func fullReport() throws -> LabReport {
        let points = (0..<3).flatMap { s in
            [1, 4, 16].flatMap { c in
                ["uniform", "zipf 1.2"].map { k in
                    ContentionPoint(
                        strategy: "s\(s)", clients: c, skew: k,
                        throughput: Double((s + 1) * c) * (k == "uniform" ? 2 : 1))
                }
            }
        }
        var section = ReportSection(
            id: "all", title: "All kinds", summary: "summary", checks: [ReportCheck(.pass, "holds", "1 = 1")])
        section.blocks.append(
            .chart(bars("bars", [ReportSeries("x", [1, 2]), ReportSeries("pub", [3, 4], published: true)])))
        section.blocks += ContentionCharts.charts(points).map { .chart($0) }
        section.blocks.append(
            .table(
                ReportTable(
                    caption: "tones", columns: ["row"] + ReportCell.Tone.allCases.map(\.rawValue),
                    rows: [["r"] + ReportCell.Tone.allCases.map { ReportCell($0.rawValue, $0) }],
                    legend: [ReportCell("occurs", .occurs)])))
        section.blocks.append(.note("a note"))
        section.data = try ReportJSON(encoding: points)
        return report([section])
    }

    /// `<svg …>…</svg>` elements of a page, in order.
    static func svgs(_ html: String) -> [String] {
        html.components(separatedBy: "<svg ").dropFirst().map { "<svg " + $0.components(separatedBy: "</svg>")[0] }
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    // MARK: escaping

    @Test("text is escaped in HTML and SVG: markup in names, titles, cells and notes stays text")
    func escaping() throws {
        #expect(ReportHTML.escape("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
        #expect(ReportHTML.escape("bell\u{7}") == "bell\u{FFFD}")
        let evil = "<script>alert(1)</script>\"onload=x"
        var section = ReportSection(id: evil, title: evil, summary: evil, checks: [ReportCheck(.fail, evil, evil)])
        section.blocks = [
            .chart(Self.bars(evil, [ReportSeries(evil, [1, 2])], categories: [evil, "b"])),
            .table(ReportTable(caption: evil, columns: [evil], rows: [[ReportCell(evil)]], legend: [ReportCell(evil)])),
            .note(evil)
        ]
        let html = ReportHTML.render(Self.report([section]))
        #expect(!html.contains("<script"))
        #expect(!html.contains("\"onload"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;onload=x"))
        let svg = try #require(Self.svgs(html).first)
        #expect(!svg.contains("<script"))
        #expect(svg.contains("<title id=\"chart-"))
        #expect(svg.contains("&lt;script&gt;"))
        // The id is reduced to letters, digits and dashes.
        #expect(svg.hasPrefix("<svg id=\"chart--script-alert-1---script--onload-x\""))
    }

    // MARK: axes

    @Test("axis scale: no values, zeros, one value, huge values, negatives, non-finite values")
    func axisScaling() {
        for values in [[], [0.0], [0, 0, 0]] {
            let scale = ReportScale.linear(values)
            #expect(scale.lower == 0 && scale.upper == 1, "\(values)")
            #expect(scale.ticks.first == 0 && scale.ticks.last == 1, "\(values)")
        }
        let one = ReportScale.linear([424])
        #expect(one.lower == 0 && one.upper >= 424 && one.upper <= 2 * 424)
        #expect(one.ticks.count >= 3 && one.ticks.count <= 11)
        #expect(one.fraction(0) == 0 && one.fraction(one.upper) == 1)

        let huge = ReportScale.linear([1e15, 3.2e15])
        #expect(huge.upper >= 3.2e15 && huge.upper.isFinite && huge.ticks.count <= 11)
        #expect(zip(huge.ticks, huge.ticks.dropFirst()).allSatisfy { $0 < $1 })
        let largest = ReportScale.linear([Double.greatestFiniteMagnitude, 1])
        #expect(largest.upper.isFinite && largest.lower == 0)
        #expect(largest.fraction(Double.greatestFiniteMagnitude) <= 1.0000001)

        let negative = ReportScale.linear([-5, 10])
        #expect(negative.lower <= -5 && negative.upper >= 10 && negative.ticks.contains(0))
        let nonFinite = ReportScale.linear([.nan, .infinity, -.infinity, 7])
        #expect(nonFinite.lower == 0 && nonFinite.upper >= 7 && nonFinite.upper.isFinite)

        #expect(ReportFormat.value(0, .number) == "0")
        #expect(ReportFormat.value(1_234, .perSecond) == "1.23k/s")
        #expect(ReportFormat.value(4_560_000, .nanoseconds) == "4.56 ms")
        #expect(ReportFormat.value(424, .milliseconds) == "424 ms")
        #expect(ReportFormat.value(0.25, .fraction) == "25%")
        #expect(ReportFormat.value(3.2e18, .number) == "3.2e+18")
        #expect(ReportFormat.value(-1_500, .number) == "-1.5k")
        #expect(ReportFormat.value(.nan, .number) == "–")
    }

    @Test("charts of zero, one and huge values draw finite coordinates with every bar inside the plot")
    func extremeValuesDraw() {
        let values: [[Double?]] = [[0, 0], [7, nil], [1e300, 2e300], [.greatestFiniteMagnitude, 0], [.nan, 3]]
        for row in values {
            let svg = ReportSVG.render(Self.bars("x", [ReportSeries("s", row)]))
            #expect(!svg.contains("nan") && !svg.contains("inf"), "\(row)")
            #expect(Self.count("class=\"mark bar\"", in: svg) == row.filter { $0?.isFinite == true }.count, "\(row)")
            // Every bar's y and height stay within the chart.
            for part in svg.components(separatedBy: "class=\"mark bar\"").dropFirst() {
                let y = Double(part.components(separatedBy: "y=\"")[1].components(separatedBy: "\"")[0])!
                let h = Double(part.components(separatedBy: "height=\"")[1].components(separatedBy: "\"")[0])!
                #expect(y >= 0 && y + h <= 400, "\(row): y \(y) height \(h)")
            }
        }
    }

    // MARK: empty

    @Test("a chart with no data says so, draws no mark, and is marked empty")
    func emptySeries() {
        let charts = [
            Self.bars("none", []),
            Self.bars("nils", [ReportSeries("s", [nil, nil])]),
            Self.bars("no-categories", [ReportSeries("s", [])], categories: []),
            ReportChart(
                id: "lines", title: "t", caption: "c",
                kind: .lines(
                    ReportLineChart(
                        xAxis: ReportAxis("clients", logarithmic: true), yAxis: ReportAxis("ops"),
                        series: [ReportLineSeries("s", [])]))),
            ReportChart(
                id: "heat", title: "t", caption: "c",
                kind: .heatMap(
                    ReportHeatMap(
                        rowAxis: "r", columnAxis: "c", valueAxis: ReportAxis("v"), rows: ["a"], columns: ["1"],
                        values: [[nil]])))
        ]
        for chart in charts {
            #expect(chart.isEmpty, "\(chart.id)")
            let svg = ReportSVG.render(chart)
            #expect(svg.contains("data-empty=\"true\""), "\(chart.id)")
            #expect(svg.contains("No data in this run"), "\(chart.id)")
            #expect(!svg.contains("class=\"mark"), "\(chart.id)")
        }
        // One series empty, the other not: drawn, with "n/a" where a value is missing.
        let partial = Self.bars("partial", [ReportSeries("s", [nil, 2]), ReportSeries("t", [])])
        #expect(!partial.isEmpty)
        let svg = ReportSVG.render(partial)
        #expect(Self.count("class=\"mark bar\"", in: svg) == 1)
        #expect(svg.contains(">n/a<"))
    }

    // MARK: ids and references

    @Test("every chart gets a unique id, a title and a description")
    func everyChartHasAnID() throws {
        var report = try Self.fullReport()
        // Two charts with the same id, one with characters an id cannot hold.
        report.sections[0].blocks.append(.chart(Self.bars("bars", [ReportSeries("x", [1, 2])])))
        report.sections[0].blocks.append(.chart(Self.bars("Odd id/ü", [ReportSeries("x", [1, 2])])))
        let html = ReportHTML.render(report)
        let svgs = Self.svgs(html)
        #expect(svgs.count == report.charts.count)
        var ids: Set<String> = []
        for svg in svgs {
            let id = try #require(
                svg.components(separatedBy: "id=\"").dropFirst().first?.components(separatedBy: "\"").first)
            #expect(id.hasPrefix("chart-"))
            #expect(id.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" }, "\(id)")
            #expect(ids.insert(id).inserted, "duplicate id \(id)")
            #expect(svg.contains("aria-labelledby=\"\(id)-title \(id)-desc\""))
            #expect(svg.contains("<title id=\"\(id)-title\">"))
            #expect(svg.contains("<desc id=\"\(id)-desc\">"))
            #expect(svg.contains("class=\"mark"), "\(id) has no data mark")
        }
        #expect(ids.contains("chart-bars") && ids.contains("chart-bars-2") && ids.contains("chart-odd-id--"))
    }

    @Test("the page references nothing outside itself: no scripts, links, images, fonts or URLs")
    func selfContained() throws {
        var report = try Self.fullReport()
        let html = ReportHTML.render(report)
        for forbidden in ["http://", "https://", "<script", "<link", "<img", "src=", "@import", "url(", "@font-face"] {
            #expect(!html.contains(forbidden), "the page contains \(forbidden)")
        }
        // Links only to anchors in the page.
        for part in html.components(separatedBy: "href=\"").dropFirst() { #expect(part.hasPrefix("#")) }
        // A URL in the data is text, never a reference.
        report.sections[0].blocks.append(.note("https://example.com/x.js"))
        let withURL = ReportHTML.render(report)
        for part in withURL.components(separatedBy: "https://").dropFirst(0).dropLast() {
            #expect(!part.hasSuffix("src=\"") && !part.hasSuffix("href=\"") && !part.hasSuffix("url("))
        }
    }

    // MARK: JSON

    @Test("the report's JSON round-trips, seeds above Int64.max included")
    func jsonRoundTrip() throws {
        var report = try Self.fullReport()
        report.sections[0].data = try ReportJSON(
            encoding: LostUpdateParameters(operations: 3, seed: .max, statementLatencyMicroseconds: 5))
        guard case .object(let fields)? = report.sections[0].data else {
            Issue.record("the parameters are not an object")
            return
        }
        #expect(fields["seed"] == .unsigned(.max))
        let decoded = try LabReport(json: report.jsonData())
        #expect(decoded == report)
        // JSON has no NaN: a non-finite figure is written as a string and read back, not an encoding error.
        var withNaN = Self.report([ReportSection(id: "n", title: "n", summary: "")])
        withNaN.sections[0].blocks = [.chart(Self.bars("nan", [ReportSeries("s", [.nan, .infinity])]))]
        guard case .bars(let bars) = try LabReport(json: withNaN.jsonData()).charts.first?.kind else {
            Issue.record("the chart did not survive")
            return
        }
        #expect(bars.series[0].values[0]?.isNaN == true && bars.series[0].values[1] == .infinity)
        // The data decodes back into the experiment's own type.
        let parameters = try JSONDecoder().decode(
            LostUpdateParameters.self, from: JSONEncoder().encode(decoded.sections[0].data))
        #expect(parameters == LostUpdateParameters(operations: 3, seed: .max, statementLatencyMicroseconds: 5))
    }

    // MARK: adapters

    /// A result as an experiment would return it (built through its JSON form: the type has no public initializer).
    static func result(_ strategy: LostUpdateStrategy, counter: Int64, committed: Int, ops: Double) throws
        -> LostUpdateResult
    {
        var fields: [String: Any] = [
            "backend": "embedded", "strategy": strategy.rawValue,
            "claimsToPreventLostUpdates": strategy.preventsLostUpdates,
            "operations": 10, "committed": committed, "gaveUp": 10 - committed, "otherErrors": [String: Int](),
            "retries": 4, "wallSeconds": 0.5, "opsPerSecond": ops, "p50Nanoseconds": 1_000, "p99Nanoseconds": 9_000,
            "finalCounter": counter, "reactionRows": committed, "lostUpdates": committed - Int(counter),
            "correctness": LostUpdateResult.judge(
                claims: strategy.preventsLostUpdates, committed: committed, counter: counter, rows: committed
            ).rawValue
        ]
        if let seed = strategy.seedPublished {
            fields["seedPublished"] = ["rows": seed.rows, "milliseconds": seed.milliseconds, "wording": seed.wording]
        }
        return try JSONDecoder().decode(
            LostUpdateResult.self, from: JSONSerialization.data(withJSONObject: fields))
    }

    @Test("a strategy that claims to prevent lost updates and lost one is a FAIL at the top of the page")
    func failAtTheTop() throws {
        let broken = try Self.result(.rowLock, counter: 8, committed: 10, ops: 20)
        #expect(broken.correctness == .fail)
        let run = LostUpdateReport.Run(
            backend: "embedded", parameters: LostUpdateParameters(operations: 10),
            results: [broken, try Self.result(.atomicIncrement, counter: 10, committed: 10, ops: 30)])
        let report = Self.report([try LostUpdateReport.section([run])])
        #expect(report.failures.map(\.subject) == ["row-lock (embedded) claims to prevent lost updates"])
        let html = ReportHTML.render(report)
        let banner = try #require(html.range(of: "<p class=\"verdict fail\">FAIL: 1 of 2 guarantees broke</p>"))
        let section = try #require(html.range(of: "<section id=\"lost-update\">"))
        #expect(banner.lowerBound < section.lowerBound)
        #expect(html.contains("<td class=\"cell-fail\">FAIL: lost 2</td>"))
        #expect(!html.contains("verdict pass"))
        #expect(ReportHTML.render(Self.report([])).contains("<p class=\"verdict none\">No guarantee was checked"))

        let fine = Self.report([
            try LostUpdateReport.section([
                LostUpdateReport.Run(
                    backend: "embedded", parameters: LostUpdateParameters(operations: 10),
                    results: [try Self.result(.rowLock, counter: 10, committed: 10, ops: 20)])
            ])
        ])
        #expect(fine.failures.isEmpty)
        #expect(ReportHTML.render(fine).contains("<p class=\"verdict pass\">1 of 1 guarantees held"))
    }

    @Test("the lost-update charts are drawn from the results, per backend, with the seed's figures as published")
    func lostUpdateChartsFromResults() throws {
        let embedded = [
            try Self.result(.rowLock, counter: 10, committed: 10, ops: 123),
            try Self.result(.snapshotRetry, counter: 7, committed: 7, ops: 456)
        ]
        let other = [try Self.result(.rowLock, counter: 9, committed: 9, ops: 789)]
        let runs = [
            LostUpdateReport.Run(
                backend: "embedded", parameters: LostUpdateParameters(operations: 10), results: embedded),
            LostUpdateReport.Run(backend: "other", parameters: LostUpdateParameters(operations: 10), results: other)
        ]
        let section = try LostUpdateReport.section(runs)
        let charts = Self.report([section]).charts
        #expect(
            charts.map(\.id) == [
                "lost-update-throughput", "lost-update-latency", "lost-update-retries", "lost-update-seed-rows",
                "lost-update-seed-wall"
            ])
        guard case .bars(let throughput) = charts[0].kind, case .bars(let rows) = charts[3].kind,
            case .bars(let wall) = charts[4].kind
        else {
            Issue.record("not bar charts")
            return
        }
        #expect(throughput.categories == ["row-lock", "snapshot-retry-5"])
        #expect(throughput.series.map(\.name) == ["embedded", "other"])
        #expect(throughput.series.map(\.values) == [[123, 456], [789, nil]])
        #expect(rows.series.last?.published == true)
        #expect(rows.series.last?.name.contains("published") == true)
        #expect(rows.series.last?.values == [1.0, 0.93])
        #expect(rows.series.first?.values == [1.0, 0.7])
        #expect(wall.series.last?.values == [424, 325])
        #expect(wall.series.first?.values == [500, 500])
        // The section's data is the runs themselves.
        let data = try JSONEncoder().encode(section.data)
        #expect(try JSONDecoder().decode([LostUpdateReport.Run].self, from: data) == runs)
    }

    @Test("the anomaly matrix becomes a table coloured by outcome, with the abort code")
    func anomalyTable() throws {
        let rows = [
            ConformanceReport.Row(
                replay: .writeSkew, level: .snapshot, expected: .verdict(.occurred), actual: .occurred, detail: ""),
            ConformanceReport.Row(
                replay: .writeSkew, level: .serializable,
                expected: .verdict(.preventedByError(.serializationFailure, .t2, afterWaiting: false)),
                actual: .preventedByError(.serializationFailure, .t2, afterWaiting: false), detail: ""),
            ConformanceReport.Row(
                replay: .dirtyRead, level: .readCommitted, expected: .verdict(.preventedBySnapshot),
                actual: .preventedBySnapshot, detail: ""),
            ConformanceReport.Row(
                replay: .lostUpdate, level: .readCommitted, expected: .verdict(.preventedByWaiting(.t2)),
                actual: .preventedByWaiting(.t2), detail: "")
        ]
        let matrix = AnomalyMatrix(
            report: ConformanceReport(backend: "test", capabilities: .embeddedEngine, rows: rows))
        let section = try matrix.reportSection()
        let html = ReportHTML.render(Self.report([section]))
        #expect(html.contains("<td class=\"cell-occurs\">occurs</td>"))
        #expect(html.contains("<td class=\"cell-abort\">prevented: T2 aborts 40001</td>"))
        #expect(html.contains("<td class=\"cell-snapshot\">prevented: snapshot</td>"))
        #expect(html.contains("<td class=\"cell-wait\">prevented: T2 waits</td>"))
        #expect(html.contains("<td class=\"cell-muted\">n/a</td>"))
        #expect(section.checks.allSatisfy { $0.status == .pass })

        // A cell the library did not expect is a failure.
        let wrong = ConformanceReport.Row(
            replay: .writeSkew, level: .serializable,
            expected: .verdict(.preventedByError(.serializationFailure, .t2, afterWaiting: false)), actual: .occurred,
            detail: "")
        let bad = AnomalyMatrix(
            report: ConformanceReport(backend: "test", capabilities: .embeddedEngine, rows: [wrong]))
        #expect(try bad.reportSection().checks.contains { $0.status == .fail })
    }

    @Test("the contention surface: a line per strategy for each skew, a heat map per strategy, gaps left blank")
    func contentionSurface() {
        var points: [ContentionPoint] = []
        for strategy in ["row-lock", "compare-and-set", "atomic"] {
            for clients in [1, 4, 16, 64, 256] {
                for skew in ["uniform", "zipf 1.2"]
                where !(strategy == "atomic" && clients == 256 && skew == "zipf 1.2") {
                    points.append(
                        ContentionPoint(
                            strategy: strategy, clients: clients, skew: skew, throughput: Double(clients * 1_000)))
                }
            }
        }
        let charts = ContentionCharts.charts(points)
        #expect(
            charts.map(\.id) == [
                "contention-lines-uniform", "contention-lines-zipf 1.2", "contention-surface-row-lock",
                "contention-surface-compare-and-set", "contention-surface-atomic"
            ])
        let uniform = ReportSVG.render(charts[0])
        #expect(Self.count("class=\"mark line\"", in: uniform) == 3)
        #expect(Self.count("class=\"mark point\"", in: uniform) == 15)
        #expect(uniform.contains(">256<") && uniform.contains("clients (log scale)"))
        let zipf = ReportSVG.render(charts[1])
        #expect(Self.count("class=\"mark point\"", in: zipf) == 14)
        let heat = ReportSVG.render(charts[4])
        #expect(Self.count("class=\"mark cell\"", in: heat) == 9)
        #expect(Self.count("class=\"missing\"", in: heat) == 1)
        #expect(heat.contains("256k/s"))
        guard case .heatMap(let map) = charts[2].kind else {
            Issue.record("not a heat map")
            return
        }
        #expect(map.rows == ["uniform", "zipf 1.2"] && map.columns == ["1", "4", "16", "64", "256"])
        #expect(map.values[1][4] == 256_000)
    }

    // MARK: the command

    @Test("isokv lab report --quick writes a page with every chart and the JSON it was drawn from")
    func command() throws {
        let directory = TemporaryDirectory("lab-report")
        defer { directory.remove() }
        let out = directory.file("report")
        let (status, stdout, stderr) = try IsokvExecutable.run(["lab", "report", "--quick", "--seed", "3", "--out", out]
        )
        #expect(status == 0, "\(stdout)\(stderr)")
        let report = try LabReport(json: Data(contentsOf: URL(fileURLWithPath: out + "/report.json")))
        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        #expect(report.parameters.contains(ReportParameter("seed", "3")))
        #expect(
            report.sections.map(\.id) == [
                "lost-update", "anomalies", "isolation", "write-skew", "queue", "contention", "baseline"
            ])
        for section in report.sections where section.id != "anomalies" {
            #expect(
                section.blocks.contains { if case .chart(let c) = $0 { return !c.isEmpty } else { return false } },
                "\(section.id) has no chart with data")
            #expect(!section.checks.isEmpty, "\(section.id) has no check")
            #expect(section.data != nil)
        }
        #expect(report.charts.count >= 20)
        #expect(report.failures.isEmpty)
        for chart in report.charts {
            let svg = try #require(Self.svgs(html).first { $0.contains("data-chart=\"\(chart.id)\"") })
            #expect(svg.contains("class=\"mark"), "\(chart.id) has no data mark")
        }
        // Lost-update: N = 20 in quick mode, each strategy's counter in the data.
        guard case .array(let runs)? = report.sections[0].data, case .object(let run)? = runs.first,
            case .array(let results)? = run["results"]
        else {
            Issue.record("no lost-update data")
            return
        }
        #expect(results.count == LostUpdateStrategy.allCases.count)
        #expect(html.contains("cell-occurs") && html.contains("cell-abort") && html.contains("cell-snapshot"))
    }
}
