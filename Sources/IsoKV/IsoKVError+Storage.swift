import IsoKVCore
import IsoKVStorage

extension IsoKVError {
    /// The public error for a failure of the durability layer: every ``IsoKVStorage/StorageError`` maps to one
    /// stable code, and the message, file and offset are kept. `open`, `checkpoint`, `backup` and `inspect`
    /// throw only ``IsoKVError``; the storage module's own type never reaches a user of the engine.
    ///
    /// | storage error | code |
    /// |---|---|
    /// | `directoryLocked` | `55006` ``Code/objectInUse`` |
    /// | `corruptSegment`, `corruptCheckpoint`, `missingSegment` | `XX001` ``Code/dataCorrupted`` |
    /// | `unsupportedFormat` | `0A000` ``Code/unsupportedFormat`` |
    /// | `io`, `logFailed` | `58030` ``Code/storageFailure`` |
    /// | `closed` | `57P01` ``Code/databaseClosed`` |
    /// | `checkpointInProgress`, `unsafePermissions` | `55000` ``Code/objectNotInPrerequisiteState`` |
    /// | `recordTooLarge`, `keyTooLarge` | `54000` ``Code/limitExceeded`` |
    package init(_ error: StorageError) {
        let message = error.description
        switch error {
        case .directoryLocked(let path):
            self.init(.objectInUse, message, file: path)
        case .corruptSegment(let file, let offset, _), .corruptCheckpoint(let file, let offset, _):
            self.init(.dataCorrupted, message, file: file, offset: offset)
        case .missingSegment(let file):
            self.init(.dataCorrupted, message, file: file)
        case .unsupportedFormat(let file, _):
            self.init(.unsupportedFormat, message, file: file)
        case .io(_, let file, _):
            self.init(.storageFailure, message, file: file)
        case .logFailed:
            self.init(.storageFailure, message)
        case .closed:
            self.init(.databaseClosed, "the database is closed")
        case .checkpointInProgress:
            self.init(.objectNotInPrerequisiteState, message)
        case .unsafePermissions(let path, _):
            self.init(.objectNotInPrerequisiteState, message, file: path)
        case .recordTooLarge, .keyTooLarge:
            self.init(.limitExceeded, message)
        }
    }
}

/// Runs `body`, turning a ``StorageError`` it throws into the public ``IsoKVError``.
nonisolated(nonsending) func mappingStorageErrors<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let error as StorageError {
        throw IsoKVError(error)
    }
}

/// The synchronous form of ``mappingStorageErrors(_:)``.
func mappingStorageErrors<R>(_ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let error as StorageError {
        throw IsoKVError(error)
    }
}
