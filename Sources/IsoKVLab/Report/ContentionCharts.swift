/// One measurement of a contention sweep: a strategy's throughput with `clients` concurrent clients at one key skew.
public struct ContentionPoint: Hashable, Sendable, Codable {
    public var strategy: String
    public var clients: Int
    /// The key distribution's label, e.g. "uniform", "zipf 0.99", "zipf 1.2"; charts keep the order of first
    /// appearance.
    public var skew: String
    /// Committed operations per second.
    public var throughput: Double

    public init(strategy: String, clients: Int, skew: String, throughput: Double) {
        self.strategy = strategy
        self.clients = clients
        self.skew = skew
        self.throughput = throughput
    }
}

/// Charts of a contention surface (clients × skew → throughput): for each skew a line chart over clients (log
/// scale) with one line per strategy, where the lines cross is where one strategy stops paying; and for each
/// strategy a heat map skew × clients.
///
/// ```swift
/// let charts = ContentionCharts.charts(points, idPrefix: "contention")
/// section.blocks += charts.map { .chart($0) }
/// ```
public enum ContentionCharts {
    public static func charts(_ points: [ContentionPoint], idPrefix: String = "contention") -> [ReportChart] {
        let skews = ordered(points.map(\.skew))
        let strategies = ordered(points.map(\.strategy))
        let clients = Array(Set(points.map(\.clients))).sorted()
        var charts: [ReportChart] = []
        for skew in skews {
            charts.append(
                ReportChart(
                    id: "\(idPrefix)-lines-\(skew)", title: "Throughput by clients, \(skew) keys",
                    caption: "Committed operations per second as clients grow, one line per strategy, keys drawn "
                        + "\(skew); where the lines cross, the cheaper strategy changes.",
                    kind: .lines(
                        ReportLineChart(
                            xAxis: ReportAxis("clients", logarithmic: true),
                            yAxis: ReportAxis("committed operations", unit: .perSecond),
                            series: strategies.map { strategy in
                                ReportLineSeries(
                                    strategy,
                                    points.filter { $0.strategy == strategy && $0.skew == skew }
                                        .map { ReportPoint(x: Double($0.clients), y: $0.throughput) })
                            }))))
        }
        for strategy in strategies {
            charts.append(
                ReportChart(
                    id: "\(idPrefix)-surface-\(strategy)", title: "Contention surface of \(strategy)",
                    caption: "Committed operations per second of \(strategy) for each number of clients (columns) "
                        + "and key skew (rows); darker is faster.",
                    kind: .heatMap(
                        ReportHeatMap(
                            rowAxis: "skew", columnAxis: "clients",
                            valueAxis: ReportAxis("operations per second", unit: .perSecond), rows: skews,
                            columns: clients.map(String.init),
                            values: skews.map { skew in
                                clients.map { c in
                                    points.first { $0.strategy == strategy && $0.skew == skew && $0.clients == c }?
                                        .throughput
                                }
                            }))))
        }
        return charts
    }

    static func ordered(_ labels: [String]) -> [String] {
        var seen: Set<String> = []
        return labels.filter { seen.insert($0).inserted }
    }
}
