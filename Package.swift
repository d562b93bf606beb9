// swift-tools-version: 6.1
//
// IsoKV: a transactional key-value store and a concurrency lab.
//
// Module map (grows with the roadmap; only modules with real content exist):
//   ConcurrentMaps  concurrent hash maps (sync.Map design and rivals), the project lock, epoch reclamation
//   IsoKV           the embedded MVCC engine and the store protocol
//   MapBenchmarks   the workloads and thread harness of `isokv bench maps` (a library so tests can run them)
//   isokv           the one CLI executable: bench, lab, check, serve...
// Planned: IsoKVPostgres (PostgreSQL backend), IsoKVServer (HTTP), IsoKVLab (anomaly replays, report).
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "IsoKV",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ConcurrentMaps", targets: ["ConcurrentMaps"]),
        .executable(name: "isokv", targets: ["isokv"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "ConcurrentMaps",
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "MapBenchmarks",
            dependencies: ["ConcurrentMaps"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "isokv",
            dependencies: [
                "ConcurrentMaps",
                "MapBenchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ConcurrentMapsTests",
            dependencies: ["ConcurrentMaps"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MapBenchmarksTests",
            dependencies: ["MapBenchmarks"],
            swiftSettings: strict
        ),
    ]
)
