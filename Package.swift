// swift-tools-version: 6.1
//
// IsoKV: a transactional key-value store and a concurrency lab.
//
// Module map (grows with the roadmap; only modules with real content exist):
//   ConcurrentMaps  concurrent hash maps (sync.Map design and rivals), the project lock, epoch reclamation
//   IsoKV           the embedded MVCC engine and the store protocol
//   IsoKVStorage    write-ahead log with group commit, checkpoints, recovery (the engine's durability layer)
//   IsoKVHistory    history recorder and checker (Adya's DSG: G0, G1a/b/c, G-single, G2-item, G2)
//   IsoKVPostgres   the store contract over PostgreSQL (postgres-nio's PostgresClient and its pool)
//   IsoKVConformance  the anomaly and row-lock replays every backend runs, expected outcomes from capabilities
//   MapBenchmarks   the workloads and thread harness of `isokv bench maps` (a library so tests can run them)
//   IsoKVWorkloads  YCSB and contention workloads over the store contract, generators, the timed async harness
//   IsoKVLab        the lab's experiments (anomaly matrix beside PostgreSQL's table, lost-update strategies, ...),
//                   written once against the store contract
//   IsoKVBaseline   SQLite through GRDB beside the embedded engine (`isokv lab baseline`); CLI and tests only
//   IsoKVLabBackends  the lab's backends: PostgreSQL (a schema per run) and the HTTP server (in-process or a URL)
//   IsoKVServer     the HTTP server (Hummingbird 2): `isokv serve`, the only place errors become HTTP
//   IsoKVClient     the store contract over HTTP (AsyncHTTPClient): `IsoKVRemote`, one more backend
//   isokv           the one CLI executable: bench, check, serve, lab...
//   IsoKVTestSupport  (Tests/IsoKVTestSupport) what the test targets share; not a product
//
// ISOKV_FUZZ=1 adds the libFuzzer target for the WAL decoder (see Sources/IsoKVStorage/DESIGN.md); it is not part
// of the normal build because it only links with -sanitize=fuzzer.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let fuzzing = Context.environment["ISOKV_FUZZ"] == "1"

let package = Package(
    name: "IsoKV",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IsoKVCore", targets: ["IsoKVCore"]),
        .library(name: "IsoKVSync", targets: ["IsoKVSync"]),
        .library(name: "ConcurrentMaps", targets: ["ConcurrentMaps"]),
        .library(name: "IsoKV", targets: ["IsoKV"]),
        .library(name: "IsoKVStorage", targets: ["IsoKVStorage"]),
        .library(name: "IsoKVHistory", targets: ["IsoKVHistory"]),
        .library(name: "IsoKVPostgres", targets: ["IsoKVPostgres"]),
        .library(name: "IsoKVWorkloads", targets: ["IsoKVWorkloads"]),
        .library(name: "IsoKVConformance", targets: ["IsoKVConformance"]),
        .library(name: "IsoKVLab", targets: ["IsoKVLab"]),
        .library(name: "IsoKVLabBackends", targets: ["IsoKVLabBackends"]),
        .library(name: "IsoKVServer", targets: ["IsoKVServer"]),
        .library(name: "IsoKVClient", targets: ["IsoKVClient"]),
        .executable(name: "isokv", targets: ["isokv"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The PostgreSQL backend only (IsoKVPostgres); the embedded engine never depends on it.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // The HTTP server (IsoKVServer) and its tests only; the embedded engine never depends on these.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // NIOHTTPTypes only: the HTTP parts the server's GET fast path handles in Hummingbird's channel pipeline.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // SQLite through GRDB: the lab's baseline only (IsoKVBaseline, linked by the CLI and the lab's tests).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // Documentation only (`swift package generate-documentation`): a plugin, never linked into a product.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "IsoKVSync",
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVCore",
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "ConcurrentMaps",
            dependencies: ["IsoKVSync"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKV",
            dependencies: ["IsoKVCore", "IsoKVSync", "ConcurrentMaps", "IsoKVStorage"],
            exclude: ["DESIGN.md", "SSI/DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVStorage",
            dependencies: ["IsoKVSync"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVConformance",
            dependencies: ["IsoKVCore", "IsoKVSync"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVHistory",
            dependencies: ["IsoKVSync"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVPostgres",
            dependencies: ["IsoKVCore", "IsoKVSync", .product(name: "PostgresNIO", package: "postgres-nio")],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVWorkloads",
            dependencies: ["IsoKVCore", "IsoKVSync", .product(name: "Histogram", package: "hdrhistogram-swift")],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVLab",
            dependencies: ["IsoKVCore", "IsoKVSync", "IsoKV", "IsoKVConformance", "IsoKVWorkloads"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        // The lab's backends beyond the embedded engine; the CLI and the lab's tests link it, IsoKVLab does not.
        .target(
            name: "IsoKVLabBackends",
            dependencies: [
                "IsoKVLab", "IsoKV", "IsoKVCore", "IsoKVSync", "IsoKVConformance", "IsoKVPostgres", "IsoKVServer",
                "IsoKVClient",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The lab's SQLite baseline: GRDB stays out of the engine's and IsoKVLab's graphs.
        .target(
            name: "IsoKVBaseline",
            dependencies: [
                "IsoKV", "IsoKVCore", "IsoKVSync", "IsoKVWorkloads", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "MapBenchmarks",
            dependencies: ["ConcurrentMaps", "IsoKVSync"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVServer",
            dependencies: [
                "IsoKV",
                "IsoKVCore",
                "IsoKVSync",
                .product(name: "Hummingbird", package: "hummingbird"),
                // HTTP1Channel and ServerChildChannel: the GET fast path wraps Hummingbird's HTTP/1 child channel.
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVClient",
            dependencies: [
                "IsoKVCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "isokv",
            dependencies: [
                "ConcurrentMaps",
                "IsoKVSync",
                "IsoKV",
                "IsoKVPostgres",
                "IsoKVStorage",
                "IsoKVServer",
                "MapBenchmarks",
                "IsoKVWorkloads",
                "IsoKVLab",
                "IsoKVLabBackends",
                "IsoKVBaseline",
                "IsoKVConformance",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ConcurrentMapsTests",
            dependencies: ["ConcurrentMaps", "IsoKVSync", "IsoKVTestSupport"],
            swiftSettings: strict
        ),
        // Helpers shared by test targets (temporary directories, running the isokv executable); not a product.
        .target(
            name: "IsoKVTestSupport",
            dependencies: ["IsoKVCore", "IsoKVWorkloads"],
            path: "Tests/IsoKVTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVTests",
            dependencies: ["IsoKV", "IsoKVSync", "ConcurrentMaps", "IsoKVStorage", "IsoKVHistory", "IsoKVTestSupport",
                           "IsoKVConformance"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVStorageTests",
            dependencies: ["IsoKVStorage", "IsoKVSync", "IsoKVTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVHistoryTests",
            dependencies: ["IsoKVHistory", "IsoKVSync", "IsoKVTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVPostgresTests",
            dependencies: ["IsoKVPostgres", "IsoKVCore", "IsoKVConformance", "IsoKVHistory", "IsoKVTestSupport",
                           .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVWorkloadsTests",
            dependencies: ["IsoKVWorkloads", "IsoKV", "IsoKVSync", "IsoKVTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVLabTests",
            dependencies: [
                "IsoKVLab", "IsoKVLabBackends", "IsoKV", "IsoKVCore", "IsoKVConformance", "IsoKVTestSupport",
                "IsoKVWorkloads", "IsoKVBaseline",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVServerTests",
            dependencies: [
                "IsoKVServer", "IsoKV", "IsoKVCore", "IsoKVSync", "IsoKVStorage", "IsoKVTestSupport", "IsoKVClient",
                "IsoKVConformance",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVClientTests",
            dependencies: [
                "IsoKVClient", "IsoKVServer", "IsoKV", "IsoKVCore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MapBenchmarksTests",
            dependencies: ["MapBenchmarks"],
            swiftSettings: strict
        ),
    ]
)

if fuzzing {
    package.products.append(.executable(name: "isokv-wal-fuzz", targets: ["IsoKVWALFuzz"]))
    package.targets.append(.executableTarget(
        name: "IsoKVWALFuzz",
        dependencies: ["IsoKVStorage"],
        swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]
    ))
}
