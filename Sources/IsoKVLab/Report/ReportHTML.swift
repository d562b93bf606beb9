import Foundation

/// Renders a ``LabReport`` as one self-contained HTML page: inline CSS, inline SVG charts (``ReportSVG``), no
/// scripts, fonts, images or links outside the page. Top to bottom: the correctness box (failures first, in red),
/// the machine and the parameters, the sections with their tables and charts, and the report's JSON.
///
/// ```swift
/// let report = try await LabReportRunner().run(LabReportOptions(quick: true))
/// try ReportHTML.render(report).write(toFile: "index.html", atomically: true, encoding: .utf8)
/// ```
public enum ReportHTML {
    /// The page.
    public static func render(_ report: LabReport) -> String {
        var ids = UniqueIDs()
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(report.title))</title>
            <style>\(css)</style>
            </head>
            <body>
            <header>
            <h1>\(escape(report.title))</h1>
            <p class="meta">Run on \(escape(report.machine.date)), \(report.machine.cores) cores, \
            \(escape(memory(report.machine.memoryBytes))), \(escape(report.machine.operatingSystem)), \
            Swift \(escape(report.machine.swift)) (\(escape(report.machine.build)) build). Every figure below was \
            measured in this run, except those marked <span class="cell-published">published</span>.</p>
            </header>

            """
        html += correctness(report)
        html += "<section id=\"run\"><h2>Machine and parameters</h2><div class=\"pair\">\n"
        let machine = report.machine
        html += keyValueTable(
            "Machine",
            [
                ("date (UTC)", machine.date), ("cores", "\(machine.cores)"), ("memory", memory(machine.memoryBytes)),
                ("operating system", machine.operatingSystem), ("kernel", machine.kernel), ("Swift", machine.swift),
                ("build", machine.build), ("load average at start", machine.loadAverage ?? "unknown")
            ])
        html += keyValueTable("Parameters", report.parameters.map { ($0.name, $0.value) })
        html += "</div></section>\n"
        if !report.sections.isEmpty {
            html += "<nav><h2>Contents</h2><ol>\n"
            for section in report.sections {
                html += "<li><a href=\"#\(anchor(section.id))\">\(escape(section.title))</a></li>\n"
            }
            html += "</ol></nav>\n"
        }
        for section in report.sections {
            html += "<section id=\"\(anchor(section.id))\"><h2>\(escape(section.title))</h2>\n"
            html += "<p>\(escape(section.summary))</p>\n"
            for block in section.blocks {
                switch block {
                case .note(let text):
                    html += "<p class=\"note\">\(escape(text))</p>\n"
                case .table(let table):
                    html += self.table(table)
                case .chart(let chart):
                    let id = ids.claim(anchor(chart.id))
                    html += "<figure class=\"chart-figure\">\(ReportSVG.render(chart, id: id))"
                    html += "<figcaption><strong>\(escape(chart.title)).</strong> \(escape(chart.caption))"
                    html += "</figcaption></figure>\n"
                }
            }
            html += "</section>\n"
        }
        if let json = try? report.jsonData() {
            html += """
                <section id="data"><h2>Data</h2><p>The report as JSON: every figure and chart above is drawn from \
                it (also written beside this page as <code>report.json</code>).</p>
                <details><summary>Show the JSON</summary><pre>\(escape(String(decoding: json, as: UTF8.self)))</pre>\
                </details></section>

                """
        }
        html += "</body>\n</html>\n"
        return html
    }

    /// The correctness box: a banner (how many checks failed, or that every guarantee held), the failures, then
    /// every check.
    static func correctness(_ report: LabReport) -> String {
        let failures = report.failures
        let guarantees = report.checks.filter { $0.status != .info }
        var html = "<section id=\"correctness\"><h2>Correctness</h2>\n"
        if guarantees.isEmpty {
            html += "<p class=\"verdict none\">No guarantee was checked in this run.</p>\n"
        } else if failures.isEmpty {
            html += """
                <p class="verdict pass">\(guarantees.count) of \(guarantees.count) guarantees held: every check \
                below passed.</p>

                """
        } else {
            html += "<p class=\"verdict fail\">FAIL: \(failures.count) of \(guarantees.count) guarantees broke</p>\n"
            html += "<ul class=\"failures\">\n"
            for check in failures {
                html += "<li><strong>FAIL</strong> \(escape(check.subject)): \(escape(check.detail))</li>\n"
            }
            html += "</ul>\n"
        }
        let ordered = failures + report.checks.filter { $0.status != .fail }
        html += "<table class=\"data checks\"><thead><tr><th>verdict</th><th>check</th><th>figures</th></tr></thead>"
        html += "<tbody>\n"
        for check in ordered {
            let tone: ReportCell.Tone = check.status == .fail ? .fail : check.status == .pass ? .ok : .muted
            html += "<tr><td class=\"cell-\(tone.rawValue)\">\(escape(check.status.rawValue))</td>"
            html += "<td>\(escape(check.subject))</td><td>\(escape(check.detail))</td></tr>\n"
        }
        html += "</tbody></table></section>\n"
        return html
    }

    static func table(_ table: ReportTable) -> String {
        var html = "<div class=\"scroll\"><table class=\"data\"><caption>\(escape(table.caption))</caption>"
        html += "<thead><tr>" + table.columns.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for row in table.rows {
            html += "<tr>"
            for (i, cell) in row.enumerated() {
                let tag = i == 0 ? "th scope=\"row\"" : "td"
                html += "<\(tag) class=\"cell-\(cell.tone.rawValue)\">\(escape(cell.text))</\(i == 0 ? "th" : "td")>"
            }
            html += "</tr>\n"
        }
        html += "</tbody></table></div>\n"
        if !table.legend.isEmpty {
            html += "<p class=\"legend\">"
            html += table.legend.map { "<span class=\"swatch cell-\($0.tone.rawValue)\">\(escape($0.text))</span>" }
                .joined(separator: " ")
            html += "</p>\n"
        }
        return html
    }

    static func keyValueTable(_ caption: String, _ rows: [(String, String)]) -> String {
        var html = "<table class=\"data kv\"><caption>\(escape(caption))</caption><tbody>\n"
        for (key, value) in rows { html += "<tr><th scope=\"row\">\(escape(key))</th><td>\(escape(value))</td></tr>\n" }
        return html + "</tbody></table>\n"
    }

    static func memory(_ bytes: UInt64) -> String {
        String(format: "%.1f GiB", Double(bytes) / Double(1 << 30))
    }

    /// Text made safe for HTML and SVG element content and quoted attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab and newline are not allowed in HTML text or XML.
                if character.value < 0x20 && character != "\n" && character != "\t" {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(character)
                }
            }
        }
        return out
    }

    /// An id usable as an HTML id and URL fragment: lowercase letters, digits and `-` (anything else becomes `-`).
    public static func anchor(_ id: String) -> String {
        let cleaned = String(
            id.lowercased().unicodeScalars.map { scalar -> Character in
                ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) ? Character(scalar) : "-"
            })
        return cleaned.isEmpty ? "x" : cleaned
    }

    /// Hands out each id once: a repeated id gets `-2`, `-3`, ….
    struct UniqueIDs {
        var used: Set<String> = []

        mutating func claim(_ id: String) -> String {
            var candidate = id
            var n = 2
            while used.contains(candidate) {
                candidate = "\(id)-\(n)"
                n += 1
            }
            used.insert(candidate)
            return candidate
        }
    }

    static let css = """

        body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #24292f; margin: 0 auto; \
        max-width: 1100px; padding: 16px 24px 48px; }
        h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 20px; border-bottom: 1px solid #d0d7de; \
        padding-bottom: 4px; margin-top: 32px; }
        .meta { color: #57606a; margin-top: 0; }
        .verdict { font-size: 18px; font-weight: 700; padding: 10px 14px; border-radius: 6px; }
        .verdict.pass { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
        .verdict.none { background: #f6f8fa; color: #57606a; border: 1px solid #d0d7de; }
        .verdict.fail { background: #ffebe9; color: #a40e26; border: 2px solid #cf222e; }
        ul.failures { color: #a40e26; font-weight: 600; }
        table.data { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
        table.data caption { text-align: left; font-weight: 600; padding: 4px 0; }
        table.data th, table.data td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; \
        vertical-align: top; }
        table.data thead th { background: #f6f8fa; }
        table.kv th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
        .pair { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
        .scroll { overflow-x: auto; }
        .cell-ok { color: #1a7f37; font-weight: 600; }
        .cell-fail { background: #ffebe9; color: #cf222e; font-weight: 700; }
        .cell-occurs { background: #ffcecb; color: #82071e; }
        .cell-wait { background: #fff1c2; color: #7a4d00; }
        .cell-abort { background: #ddf4ff; color: #0a3069; }
        .cell-snapshot { background: #dafbe1; color: #116329; }
        .cell-muted { color: #6e7781; }
        .cell-published { color: #57606a; font-style: italic; }
        .swatch { display: inline-block; padding: 2px 8px; margin: 2px; border-radius: 4px; border: 1px solid #d0d7de; \
        font-size: 12px; }
        figure.chart-figure { margin: 12px 0 24px; }
        figure.chart-figure svg { max-width: 100%; height: auto; }
        figcaption { font-size: 13px; color: #57606a; max-width: 760px; }
        svg .mark:hover { opacity: 0.75; }
        .note { font-size: 13px; color: #57606a; }
        pre { font-size: 11px; background: #f6f8fa; padding: 8px; overflow-x: auto; max-height: 480px; }

        """
}
