import IsoKVSync
import Foundation

/// Resumes acknowledged committers on a second thread owned by the log, so that the flusher can start the next
/// write + fdatasync at once instead of spending tens of microseconds resuming a large batch (each resume
/// enqueues a task on the global executor). Small batches (≤ ``directResumeLimit``) are still resumed by the
/// flusher itself: for a lone committer one more thread hop would cost more than it saves.
final class Notifier: Sendable {
    /// Batches of at most this many waiters are resumed by the flusher directly.
    static let directResumeLimit = 4

    struct State {
        /// Waiters to resume, in acknowledgement order. Appended by the flusher, drained by the notifier.
        var pending: [Waiter] = []
        /// The notifier is (about to be) parked on `wake`; the next `post` clears it and signals.
        var sleeping = false
        /// Set by the flusher as it exits: drain, resume `exitContinuation` (close), exit.
        var stopping = false
        var exitContinuation: PlainContinuation?
    }

    let state = Locked(State())
    let wake = WakeSignal()

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "isokv-wal-notifier"
        thread.start()
    }

    /// Hands acknowledged waiters over (called by the flusher).
    func post(_ waiters: [Waiter]) {
        let signal = state.withLock { s -> Bool in
            s.pending.append(contentsOf: waiters)
            guard s.sleeping else { return false }
            s.sleeping = false
            return true
        }
        if signal { wake.signal() }
    }

    /// Asks the notifier to drain and exit, then resume `continuation` (if any).
    func stop(then continuation: PlainContinuation?) {
        let signal = state.withLock { s -> Bool in
            s.stopping = true
            s.exitContinuation = continuation
            guard s.sleeping else { return false }
            s.sleeping = false
            return true
        }
        if signal { wake.signal() }
    }

    private func run() {
        var batch: [Waiter] = []
        while true {
            var exit: PlainContinuation?? = nil
            var sleep = false
            state.withLock { s in
                if !s.pending.isEmpty {
                    swap(&batch, &s.pending)
                } else if s.stopping {
                    exit = .some(s.exitContinuation)
                } else {
                    s.sleeping = true
                    sleep = true
                }
            }
            if let exit {
                exit?.resume()
                return
            }
            if sleep {
                wake.wait()
                continue
            }
            for w in batch { w.continuation.resume() }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
