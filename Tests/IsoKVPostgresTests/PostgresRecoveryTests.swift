import Foundation
import IsoKVCore
import IsoKVPostgres
import Testing

/// Connection loss and recovery, on a second throwaway cluster of its own (stopping the shared one would break the
/// suites running in parallel). Needs the cluster script, so it runs under `scripts/pg-test-cluster run`.
@Suite(
    "Postgres recovery",
    .enabled(
        if: PostgresTestEnvironment.clusterScript != nil,
        "needs scripts/pg-test-cluster (ISOKV_PG_CLUSTER_CTL) to start a cluster it may restart"))
struct PostgresRecoveryTests {
    @Test("PostgreSQL restarted under a client: 08006 while down, the pool recovers when it is back")
    func restartUnderClient() async throws {
        let script = PostgresTestEnvironment.clusterScript!
        let env = try await runProgram(script, ["start"])
        func value(_ name: String) -> String? {
            env.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }
                .map {
                    String($0.dropFirst("export \(name)=".count)).trimmingCharacters(
                        in: CharacterSet(charactersIn: "'"))
                }
        }
        let url = try #require(value("ISOKV_POSTGRES_URL"))
        let dir = try #require(value("ISOKV_PG_CLUSTER_DIR"))
        do {
            var config = try PostgresTestEnvironment.configuration(url: url)
            config.connectionTimeout = .seconds(1)
            config.client.options.maximumConnections = 4
            let store = try await PostgresStore(configuration: config)
            _ = try await store.put("k", "before")
            let open = try await store.begin(.readCommitted)
            try await open.put("pending", "lost")

            try await runProgram(script, ["stop-server", dir])
            let down = await isoKVError { _ = try await store.get("k") }
            #expect(down?.code == .connectionFailure)
            #expect(await isoKVError { try await store.put("k", "while down") }?.code == .connectionFailure)
            let inTx = await isoKVError { try await open.put("more", "x") }
            #expect(inTx?.code == .connectionFailure)
            #expect(await isoKVError { try await open.commit() }?.code == .transactionAborted)
            try await open.rollback()

            try await runProgram(script, ["start-server", dir])
            // The pool opens new connections; allow it a few attempts (its reconnect backoff).
            var recovered: VersionedValue?
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            while recovered == nil && clock.now < deadline {
                do { recovered = try await store.get("k") } catch let e as IsoKVError where e.code == .connectionFailure
                {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(recovered?.value == "before")
            #expect(try await store.get("pending") == nil)  // the open transaction did not survive
            _ = try await store.put("k", "after")
            let seen = try await store.transaction(.serializable) { tx in try await tx.get("k") }
            #expect(seen == "after")
            await store.shutdown()
        } catch {
            _ = try? await runProgram(script, ["stop", dir])
            throw error
        }
        try await runProgram(script, ["stop", dir])
    }
}
