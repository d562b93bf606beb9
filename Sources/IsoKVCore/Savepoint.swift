/// A savepoint inside one transaction, as returned by ``StoreTransaction/savepoint()``.
public struct Savepoint: Sendable, Hashable {
    /// The transaction it belongs to.
    public let transaction: TransactionID
    /// Unique within the transaction.
    public let id: Int
    public init(transaction: TransactionID, id: Int) { self.transaction = transaction; self.id = id }
}
