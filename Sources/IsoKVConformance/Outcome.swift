import IsoKVCore

/// What one run of one replay found: the ``Verdict`` (compared with the expected table), a human-readable detail
/// line, and the evidence behind it.
///
/// ```swift
/// let outcome = try await runner.run(.lostUpdate, at: .snapshot)
/// print(outcome.verdict)                 // T2 failed 40001
/// print(outcome.detail)                  // T2 failed with 40001 at “writes n = 1” (key n, other transaction T1); …
/// outcome.error?.otherTransaction == outcome.transactions[.t1]   // the engine names the winner
/// ```
public struct Outcome: Hashable, Sendable {
    /// What happened, in the expected table's terms.
    public var verdict: Verdict
    /// One line for people: the values read, who waited, who failed where and why.
    public var detail: String
    /// The error behind a ``Verdict/preventedByError(_:_:afterWaiting:)`` verdict (its key and other transaction
    /// as the backend reported them); nil otherwise.
    public var error: IsoKVError?
    /// The id each role's transaction had in this run (for checking ``IsoKVError/otherTransaction``).
    public var transactions: [TransactionRole: TransactionID]
    /// The replay's steps in the order they were taken (`T1 writes x = 1`, `T2 waits for its lock on x`, …).
    public var steps: [String]

    public init(
        verdict: Verdict, detail: String, error: IsoKVError? = nil,
        transactions: [TransactionRole: TransactionID] = [:], steps: [String] = []
    ) {
        self.verdict = verdict
        self.detail = detail
        self.error = error
        self.transactions = transactions
        self.steps = steps
    }

    /// The role whose transaction `error` names as the other transaction, if it names one of this run's.
    public var otherRole: TransactionRole? {
        guard let other = error?.otherTransaction else { return nil }
        return transactions.first { $0.value == other }?.key
    }
}
