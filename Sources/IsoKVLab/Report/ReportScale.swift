import Foundation

/// A linear axis scale with round ticks: the domain always covers every finite value given (and zero when
/// `includingZero`), widened to the nearest multiples of a 1-2-5 step. No values, or all values equal, still give a
/// usable domain (`0…1`, or around the value); non-finite values are ignored.
///
/// ```swift
/// let scale = ReportScale.linear([0, 424, 1_200])
/// scale.ticks            // [0, 200, 400, …, 1200]
/// scale.fraction(600)    // 0.5
/// ```
public struct ReportScale: Hashable, Sendable {
    public var lower: Double
    public var upper: Double
    /// Tick values, ascending, from `lower` to `upper`.
    public var ticks: [Double]

    /// A scale for `values` with about `tickCount` intervals.
    public static func linear(_ values: [Double], includingZero: Bool = true, tickCount: Int = 5) -> ReportScale {
        let finite = values.filter(\.isFinite)
        var low = finite.min() ?? 0
        var high = finite.max() ?? (includingZero ? 1 : 0)
        if includingZero {
            low = Swift.min(low, 0)
            high = Swift.max(high, 0)
        }
        if low == high {
            if low == 0 {
                high = 1
            } else {
                let pad = Swift.abs(low) / 2
                (low, high) = includingZero && low > 0 ? (0, high + pad) : (low - pad, high + pad)
                if includingZero && high < 0 { high = 0 }
            }
        }
        let step = niceStep((high / Double(tickCount)) - (low / Double(tickCount)))
        let niceLow = (low / step).rounded(.down) * step
        let niceHigh = (high / step).rounded(.up) * step
        guard step.isFinite, step > 0, niceLow.isFinite, niceHigh.isFinite, (niceHigh - niceLow).isFinite,
            (niceHigh - niceLow) / step < 100
        else {
            // Too close to the largest Double to round: the raw extremes, no intermediate ticks.
            return ReportScale(lower: low, upper: high, ticks: [low, high])
        }
        let count = Int(((niceHigh - niceLow) / step).rounded())
        let ticks = (0...count).map { i in niceLow + Double(i) * step }.map { Swift.abs($0) < step / 1e9 ? 0 : $0 }
        return ReportScale(lower: niceLow, upper: niceHigh, ticks: ticks)
    }

    /// Where `value` lies in the domain, 0 at `lower`, 1 at `upper` (outside for values outside it).
    public func fraction(_ value: Double) -> Double {
        let span = (upper / 2) - (lower / 2)
        return span > 0 ? ((value / 2) - (lower / 2)) / span : 0
    }

    /// The smallest of 1, 2, 5 × 10ⁿ that is at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw.isFinite, raw > 0 else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        return nice * magnitude
    }
}

/// How numbers are written on axes, labels and tables.
public enum ReportFormat {
    /// `value` in `unit`, short: "1.2k", "3.4M/s", "850 ns", "4.56 ms", "25%".
    public static func value(_ value: Double, _ unit: ReportAxis.Unit) -> String {
        guard value.isFinite else { return "–" }
        if value == 0 { return "0" }
        if value < 0 { return "-" + Self.value(-value, unit) }
        switch unit {
        case .number: return number(value)
        case .perSecond: return number(value) + "/s"
        case .nanoseconds: return duration(nanoseconds: value)
        case .milliseconds: return duration(nanoseconds: value * 1e6)
        case .fraction:
            let percent = value * 100
            return
                (percent >= 100 || percent == percent.rounded()
                ? String(format: "%.0f", percent)
                : String(format: "%.3g", percent)) + "%"
        }
    }

    /// 0 → "0", 12 → "12", 0.25 → "0.25", 1234 → "1.23k", 5.6e7 → "56M", 1e20 → "1e+20".
    public static func number(_ value: Double) -> String {
        let units: [(Double, String)] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        if value >= 1e15 { return String(format: "%.3g", value) }
        for (scale, suffix) in units where value >= scale { return String(format: "%.3g", value / scale) + suffix }
        if value == value.rounded() { return String(format: "%.0f", value) }
        return String(format: "%.3g", value)
    }

    /// 850 → "850 ns", 12_300 → "12.3 µs", 4_560_000 → "4.56 ms", 1.2e9 → "1.2 s".
    public static func duration(nanoseconds ns: Double) -> String {
        switch ns {
        case 1e12...: return String(format: "%.0f s", ns / 1e9)
        case 1e9...: return String(format: "%.3g s", ns / 1e9)
        case 1e6...: return String(format: "%.3g ms", ns / 1e6)
        case 1e3...: return String(format: "%.3g µs", ns / 1e3)
        default: return ns == 0 ? "0" : String(format: "%.3g ns", ns)
        }
    }
}
