import Foundation

/// Draws a ``ReportChart`` as inline SVG: no scripts, no external references, readable without CSS (every colour and
/// size is an attribute; the page's CSS only adds hover). Every SVG carries `id="chart-<id>"`, `data-chart="<id>"`,
/// a `<title>` and a `<desc>` (named by `aria-labelledby`), and every data mark (bar, line, point, heat-map cell) has
/// class `mark` and its own `<title>` with the exact figure, so the checks can count marks per chart.
///
/// ```swift
/// let svg = ReportSVG.render(chart)   // "<svg id=\"chart-…\" …>…</svg>"
/// ```
public enum ReportSVG {
    /// Series colours (Okabe–Ito: distinguishable with the common colour-vision deficiencies).
    static let palette = ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#8c6d00", "#333333"]

    static let width = 760.0
    static let font = "font-family=\"system-ui, sans-serif\""

    /// The chart as one `<svg>` element; `id` replaces the chart's own id (the page makes ids unique).
    public static func render(_ chart: ReportChart, id: String? = nil) -> String {
        let id = id ?? ReportHTML.anchor(chart.id)
        var body: String
        var height: Double
        if chart.isEmpty {
            height = 120
            body = text(
                x: width / 2, y: 64, "No data in this run", anchor: "middle", size: 14, attributes: "class=\"empty\"")
        } else {
            switch chart.kind {
            case .bars(let bars): (body, height) = barChart(bars)
            case .lines(let lines): (body, height) = lineChart(lines)
            case .heatMap(let map): (body, height) = heatMap(map)
            }
        }
        let e = ReportHTML.escape
        return """
            <svg id="chart-\(id)" data-chart="\(e(chart.id))" class="chart" role="img" \
            aria-labelledby="chart-\(id)-title chart-\(id)-desc"\(chart.isEmpty ? " data-empty=\"true\"" : "") \
            viewBox="0 0 \(n(width)) \(n(height))" width="\(n(width))" height="\(n(height))" \(font) font-size="12">\
            <title id="chart-\(id)-title">\(e(chart.title))</title><desc id="chart-\(id)-desc">\(e(chart.caption))</desc>\
            <rect class="frame" x="0.5" y="0.5" width="\(n(width - 1))" height="\(n(height - 1))" fill="#ffffff" \
            stroke="#d0d7de"/>\(body)</svg>
            """
    }

    // MARK: bars

    static func barChart(_ chart: ReportBarChart) -> (String, Double) {
        let names = chart.series.map { $0.name }
        let (legendSVG, legendHeight) = legend(names, published: chart.series.map(\.published))
        let longest = chart.categories.map(\.count).max() ?? 0
        let rotate = Double(longest) * 7 > (width - 100) / Double(max(chart.categories.count, 1)) - 6
        let bottom = rotate ? min(38 + Double(longest) * 3.7, 150) : 48
        let top = 16 + legendHeight
        let left = rotate ? 100.0 : 78.0
        let plotHeight = 240.0
        let plotWidth = width - left - 20
        let height = top + plotHeight + bottom
        let values = chart.series.flatMap { $0.values.compactMap { $0 } }
        let scale = ReportScale.linear(values)
        var svg = legendSVG
        svg += valueAxis(
            scale, unit: chart.valueAxis.unit, left: left, top: top, plotWidth: plotWidth, plotHeight: plotHeight)
        svg += axisLabel(chart.valueAxis.label, x: 16, y: top + plotHeight / 2, vertical: true)
        svg += axisLabel(chart.categoryAxis, x: left + plotWidth / 2, y: height - 8, vertical: false)

        let groupWidth = plotWidth / Double(max(chart.categories.count, 1))
        let seriesCount = Double(max(chart.series.count, 1))
        let barWidth = min(groupWidth * 0.8 / seriesCount, 60)
        let baseline = top + plotHeight * (1 - scale.fraction(0))
        // Value labels above the bars when every one of them fits its bar, so that none is missing among the others.
        let labelsFit = chart.series.allSatisfy { series in
            series.values.allSatisfy { value in
                value.map { Double(ReportFormat.value($0, chart.valueAxis.unit).count) * 5.4 <= barWidth + 2 } ?? true
            }
        }
        for (c, category) in chart.categories.enumerated() {
            let groupStart = left + Double(c) * groupWidth + (groupWidth - barWidth * seriesCount) / 2
            for (s, series) in chart.series.enumerated() {
                let x = groupStart + Double(s) * barWidth
                let label = "\(category), \(series.name)"
                guard c < series.values.count, let value = series.values[c], value.isFinite else {
                    svg += text(
                        x: x + barWidth / 2, y: baseline - 4, "n/a", anchor: "middle", size: 9,
                        attributes: "class=\"missing\" fill=\"#6e7781\"")
                    continue
                }
                let y = top + plotHeight * (1 - scale.fraction(value))
                let color = palette[s % palette.count]
                let style =
                    series.published
                    ? "fill=\"#ffffff\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"4 2\""
                    : "fill=\"\(color)\""
                svg += """
                    <rect class="mark bar" x="\(n(x + 1))" y="\(n(min(y, baseline)))" width="\(n(max(barWidth - 2, 1)))" \
                    height="\(n(max(abs(baseline - y), 0.5)))" \(style)><title>\(ReportHTML.escape(label)): \
                    \(ReportHTML.escape(ReportFormat.value(value, chart.valueAxis.unit)))</title></rect>
                    """
                let valueLabel = ReportFormat.value(value, chart.valueAxis.unit)
                if labelsFit {
                    svg += text(
                        x: x + barWidth / 2, y: min(y, baseline) - 3, valueLabel, anchor: "middle", size: 9,
                        attributes: "fill=\"#24292f\"")
                }
            }
            let cx = left + (Double(c) + 0.5) * groupWidth
            let ly = top + plotHeight + 14
            if rotate {
                svg += text(
                    x: cx, y: ly, category, anchor: "end", size: 11,
                    attributes: "transform=\"rotate(-35 \(n(cx)) \(n(ly)))\"")
            } else {
                svg += text(x: cx, y: ly + 2, category, anchor: "middle", size: 11)
            }
        }
        svg += line(x1: left, y1: baseline, x2: left + plotWidth, y2: baseline, color: "#57606a")
        return (svg, height)
    }

    // MARK: lines

    static func lineChart(_ chart: ReportLineChart) -> (String, Double) {
        let (legendSVG, legendHeight) = legend(chart.series.map(\.name), published: chart.series.map { _ in false })
        let top = 16 + legendHeight
        let left = 78.0
        let plotHeight = 240.0
        let plotWidth = width - left - 30
        let height = top + plotHeight + 52
        let points = chart.series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let logX = chart.xAxis.logarithmic && points.allSatisfy { $0.x > 0 }
        let xs = points.map { logX ? log2($0.x) : $0.x }
        let xScale: ReportScale
        if logX {
            let distinct = Array(Set(points.map(\.x))).sorted()
            let low = log2(distinct.first ?? 1)
            let high = max(log2(distinct.last ?? 2), low + 1)
            xScale = ReportScale(lower: low, upper: high, ticks: distinct.map(log2))
        } else {
            xScale = ReportScale.linear(xs, includingZero: false)
        }
        let yScale = ReportScale.linear(points.map(\.y))
        func px(_ x: Double) -> Double { left + plotWidth * xScale.fraction(logX ? log2(x) : x) }
        func py(_ y: Double) -> Double { top + plotHeight * (1 - yScale.fraction(y)) }

        var svg = legendSVG
        svg += valueAxis(
            yScale, unit: chart.yAxis.unit, left: left, top: top, plotWidth: plotWidth, plotHeight: plotHeight)
        for tick in xScale.ticks {
            let value = logX ? exp2(tick) : tick
            let x = left + plotWidth * xScale.fraction(tick)
            svg += line(x1: x, y1: top + plotHeight, x2: x, y2: top + plotHeight + 4, color: "#57606a")
            svg += text(
                x: x, y: top + plotHeight + 17, ReportFormat.value(value, chart.xAxis.unit), anchor: "middle", size: 11)
        }
        svg += line(x1: left, y1: top + plotHeight, x2: left + plotWidth, y2: top + plotHeight, color: "#57606a")
        svg += axisLabel(chart.yAxis.label, x: 16, y: top + plotHeight / 2, vertical: true)
        svg += axisLabel(
            chart.xAxis.label + (logX ? " (log scale)" : ""), x: left + plotWidth / 2, y: height - 10, vertical: false)
        for (s, series) in chart.series.enumerated() {
            let color = palette[s % palette.count]
            let finite = series.points.filter { $0.x.isFinite && $0.y.isFinite }.sorted { $0.x < $1.x }
            guard !finite.isEmpty else { continue }
            let d = finite.enumerated().map { i, p in "\(i == 0 ? "M" : "L")\(n(px(p.x))) \(n(py(p.y)))" }
                .joined(separator: " ")
            svg += """
                <path class="mark line" d="\(d)" fill="none" stroke="\(color)" stroke-width="2">\
                <title>\(ReportHTML.escape(series.name))</title></path>
                """
            for p in finite {
                svg += """
                    <circle class="mark point" cx="\(n(px(p.x)))" cy="\(n(py(p.y)))" r="3.5" fill="\(color)">\
                    <title>\(ReportHTML.escape(series.name)): \(ReportHTML.escape(chart.xAxis.label)) \
                    \(ReportHTML.escape(ReportFormat.value(p.x, chart.xAxis.unit))) → \
                    \(ReportHTML.escape(ReportFormat.value(p.y, chart.yAxis.unit)))</title></circle>
                    """
            }
        }
        return (svg, height)
    }

    // MARK: heat map

    static func heatMap(_ map: ReportHeatMap) -> (String, Double) {
        let left = 16 + min(Double(map.rows.map(\.count).max() ?? 0) * 7, 200)
        let top = 52.0
        let plotWidth = width - left - 20
        let cellWidth = plotWidth / Double(max(map.columns.count, 1))
        let cellHeight = 30.0
        let height = top + cellHeight * Double(map.rows.count) + 64
        let values = map.values.flatMap { $0.compactMap { $0 } }.filter(\.isFinite)
        let low = min(values.min() ?? 0, 0)
        let high = max(values.max() ?? 1, low + Double.leastNonzeroMagnitude)
        var svg = axisLabel(map.columnAxis, x: left + plotWidth / 2, y: 18, vertical: false)
        for (c, column) in map.columns.enumerated() {
            svg += text(x: left + (Double(c) + 0.5) * cellWidth, y: top - 8, column, anchor: "middle", size: 11)
        }
        svg += text(x: 8, y: top - 8, map.rowAxis, anchor: "start", size: 11, attributes: "font-weight=\"600\"")
        for (r, row) in map.rows.enumerated() {
            let y = top + Double(r) * cellHeight
            svg += text(x: left - 6, y: y + cellHeight / 2 + 4, row, anchor: "end", size: 11)
            for (c, column) in map.columns.enumerated() {
                let x = left + Double(c) * cellWidth
                let label = "\(map.rowAxis) \(row), \(map.columnAxis) \(column)"
                guard r < map.values.count, c < map.values[r].count, let value = map.values[r][c], value.isFinite
                else {
                    svg += """
                        <rect class="missing" x="\(n(x + 1))" y="\(n(y + 1))" width="\(n(cellWidth - 2))" \
                        height="\(n(cellHeight - 2))" fill="#f6f8fa"><title>\(ReportHTML.escape(label)): not measured\
                        </title></rect>
                        """
                    continue
                }
                let t = (value - low) / (high - low)
                svg += """
                    <rect class="mark cell" x="\(n(x + 1))" y="\(n(y + 1))" width="\(n(cellWidth - 2))" \
                    height="\(n(cellHeight - 2))" fill="\(heatColor(t))"><title>\(ReportHTML.escape(label)): \
                    \(ReportHTML.escape(ReportFormat.value(value, map.valueAxis.unit)))</title></rect>
                    """
                if cellWidth >= 34 {
                    svg += text(
                        x: x + cellWidth / 2, y: y + cellHeight / 2 + 4, ReportFormat.value(value, map.valueAxis.unit),
                        anchor: "middle", size: 10, attributes: "fill=\"\(t > 0.55 ? "#ffffff" : "#24292f")\"")
                }
            }
        }
        // The colour scale: five swatches from the lowest to the highest value.
        let legendY = top + cellHeight * Double(map.rows.count) + 18
        svg += text(x: left, y: legendY + 11, map.valueAxis.label + ":", anchor: "start", size: 11)
        let start = left + Double(map.valueAxis.label.count + 2) * 6.5
        for i in 0...4 {
            let t = Double(i) / 4
            let x = start + Double(i) * 92
            svg += """
                <rect class="legend-swatch" x="\(n(x))" y="\(n(legendY))" width="16" height="14" \
                fill="\(heatColor(t))" stroke="#d0d7de"/>
                """
            svg += text(
                x: x + 20, y: legendY + 11, ReportFormat.value(low + t * (high - low), map.valueAxis.unit),
                anchor: "start", size: 10)
        }
        return (svg, height)
    }

    /// From a pale blue (t = 0) to a dark blue (t = 1).
    static func heatColor(_ t: Double) -> String {
        let t = min(max(t.isFinite ? t : 0, 0), 1)
        let from = (0xee, 0xf4, 0xfb)
        let to = (0x08, 0x30, 0x6b)
        func mix(_ a: Int, _ b: Int) -> Int { Int((Double(a) + (Double(b) - Double(a)) * t).rounded()) }
        return String(format: "#%02x%02x%02x", mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
    }

    // MARK: pieces

    /// Swatches and names in rows across the top; returns the SVG and the height it takes.
    static func legend(_ names: [String], published: [Bool]) -> (String, Double) {
        guard names.count > 1 || published.contains(true) else { return ("", 0) }
        var svg = ""
        var x = 78.0
        var y = 14.0
        for (i, name) in names.enumerated() {
            let entryWidth = 22 + Double(name.count) * 6.6 + 16
            if x + entryWidth > width - 10 && x > 78 {
                x = 78
                y += 18
            }
            let color = palette[i % palette.count]
            let style =
                published[i]
                ? "fill=\"#ffffff\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"3 2\""
                : "fill=\"\(color)\""
            svg +=
                "<rect class=\"legend-swatch\" x=\"\(n(x))\" y=\"\(n(y - 10))\" width=\"14\" height=\"12\" \(style)/>"
            svg += text(x: x + 20, y: y, name, anchor: "start", size: 11)
            x += entryWidth
        }
        return (svg, y + 4)
    }

    /// Grid lines and tick labels of a vertical value axis.
    static func valueAxis(
        _ scale: ReportScale, unit: ReportAxis.Unit, left: Double, top: Double, plotWidth: Double, plotHeight: Double
    ) -> String {
        var svg = ""
        for tick in scale.ticks {
            let y = top + plotHeight * (1 - scale.fraction(tick))
            svg += line(x1: left, y1: y, x2: left + plotWidth, y2: y, color: "#eaeef2")
            svg += text(x: left - 6, y: y + 4, ReportFormat.value(tick, unit), anchor: "end", size: 11)
        }
        svg += line(x1: left, y1: top, x2: left, y2: top + plotHeight, color: "#57606a")
        return svg
    }

    static func axisLabel(_ label: String, x: Double, y: Double, vertical: Bool) -> String {
        text(
            x: x, y: y, label, anchor: "middle", size: 12,
            attributes: "class=\"axis-label\" font-weight=\"600\""
                + (vertical ? " transform=\"rotate(-90 \(n(x)) \(n(y)))\"" : ""))
    }

    static func text(
        x: Double, y: Double, _ content: String, anchor: String, size: Int, attributes: String = ""
    ) -> String {
        "<text x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\" font-size=\"\(size)\""
            + (attributes.isEmpty ? "" : " " + attributes) + ">\(ReportHTML.escape(content))</text>"
    }

    static func line(x1: Double, y1: Double, x2: Double, y2: Double, color: String) -> String {
        "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(color)\" stroke-width=\"1\"/>"
    }

    /// A coordinate with one decimal; never "nan" or "inf" (0 instead) so a bad value cannot break the SVG.
    static func n(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() && abs(rounded) < 1e15
            ? String(Int(rounded)) : String(format: "%.1f", rounded)
    }
}
