// The continuations the log suspends committers with.
//
// Release builds use `UnsafeContinuation` (no allocation). ThreadSanitizer builds (`-DTSAN`, see scripts/test) use
// `CheckedContinuation`: when a continuation is resumed from a foreign thread (the flusher) before the task has
// finished suspending, the hand-off is synchronised only by atomics inside the uninstrumented concurrency runtime,
// and TSan reports a false race between the inlined `UnsafeContinuation.resume` and the resumed task
// (swiftlang/swift#57803). The checked variant keeps that hand-off inside the runtime.

#if TSAN
    typealias CommitContinuation = CheckedContinuation<Void, any Error>
    typealias PlainContinuation = CheckedContinuation<Void, Never>

    @inline(__always)
    func suspendCommitter(_ body: (CommitContinuation) -> Void) async throws {
        try await withCheckedThrowingContinuation(body)
    }

    @inline(__always)
    func suspendPlain(_ body: (PlainContinuation) -> Void) async {
        await withCheckedContinuation(body)
    }

    @inline(__always)
    func suspendReturning<T>(_ body: (CheckedContinuation<T, Never>) -> Void) async -> T {
        await withCheckedContinuation(body)
    }
#else
    typealias CommitContinuation = UnsafeContinuation<Void, any Error>
    typealias PlainContinuation = UnsafeContinuation<Void, Never>

    @inline(__always)
    func suspendCommitter(_ body: (CommitContinuation) -> Void) async throws {
        try await withUnsafeThrowingContinuation(body)
    }

    @inline(__always)
    func suspendPlain(_ body: (PlainContinuation) -> Void) async {
        await withUnsafeContinuation(body)
    }

    @inline(__always)
    func suspendReturning<T>(_ body: (UnsafeContinuation<T, Never>) -> Void) async -> T {
        await withUnsafeContinuation(body)
    }
#endif
