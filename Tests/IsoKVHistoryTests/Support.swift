import IsoKVHistory
import Testing

/// Builds one recorded transaction inline.
func txn(
    _ id: TxnID, _ level: HistoryIsolation = .serializable, _ build: (inout TransactionRecord) throws -> Void
) rethrows -> TransactionRecord {
    var t = TransactionRecord(id: id, level: level)
    try build(&t)
    return t
}

/// Asserts that `history` shows exactly the phenomena `expected` (nothing else), and that each level accepts it
/// exactly when it forbids none of them.
func expectExactly(
    _ expected: Set<Phenomenon>, in history: History, sourceLocation: SourceLocation = #_sourceLocation
) throws -> HistoryAnalysis {
    let analysis = try HistoryChecker().analyze(history)
    #expect(analysis.phenomena == expected, "\(analysis.anomalies)", sourceLocation: sourceLocation)
    for level in HistoryIsolation.allCases {
        let result = analysis.result(at: level)
        let shouldPass = expected.allSatisfy { !$0.isForbidden(at: level) }
        #expect(result.isValid == shouldPass, "\(result)", sourceLocation: sourceLocation)
        #expect(result.phenomena == expected.filter { $0.isForbidden(at: level) }, sourceLocation: sourceLocation)
    }
    return analysis
}
