import Foundation

/// Any JSON value: how a section carries the results it was drawn from, whatever their `Codable` type.
///
/// A value made with ``init(encoding:)`` has passed through JSON once, so numbers are in their canonical case
/// (whole numbers as `.integer`/`.unsigned`, others as `.number`) and encoding it again and decoding gives it back.
///
/// ```swift
/// let data = try ReportJSON(encoding: ["seed": 7])
/// // .object(["seed": .integer(7)])
/// ```
public enum ReportJSON: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    /// Whole numbers above `Int64.max` (seeds are `UInt64`).
    case unsigned(UInt64)
    case number(Double)
    case string(String)
    case array([ReportJSON])
    case object([String: ReportJSON])

    /// `value` as `JSONEncoder` writes it.
    /// Non-finite numbers (a rate of nothing over nothing) become the strings "NaN", "+Infinity", "-Infinity".
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = LabReport.nonFinite
        self = try JSONDecoder().decode(ReportJSON.self, from: try encoder.encode(value))
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ReportJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ReportJSON].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension LabReport {
    /// The report as JSON (pretty-printed, keys sorted): what `report.json` holds and the page embeds.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = Self.nonFinite
        return try encoder.encode(self)
    }

    /// Reads what ``jsonData()`` wrote.
    ///
    /// ```swift
    /// let report = try LabReport(json: Data(contentsOf: URL(fileURLWithPath: "report/report.json")))
    /// ```
    public init(json: Data) throws {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "+Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self = try decoder.decode(LabReport.self, from: json)
    }

    /// How non-finite numbers are written: as strings, since JSON has no NaN or infinity.
    static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
        positiveInfinity: "+Infinity", negativeInfinity: "-Infinity", nan: "NaN")
}
