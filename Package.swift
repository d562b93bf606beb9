// swift-tools-version: 6.1
//
// IsoKV: a transactional key-value store and a concurrency lab.
//
// Module map (grows with the roadmap; only modules with real content exist):
//   ConcurrentMaps  concurrent hash maps (sync.Map design and rivals), the project lock, epoch reclamation
//   IsoKV           the embedded MVCC engine and the store protocol
//   IsoKVHistory    history recorder and checker (Adya's DSG: G0, G1a/b/c, G-single, G2-item, G2)
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
        .library(name: "IsoKV", targets: ["IsoKV"]),
        .library(name: "IsoKVHistory", targets: ["IsoKVHistory"]),
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
            name: "IsoKV",
            dependencies: ["ConcurrentMaps"],
            exclude: ["DESIGN.md", "SSI/DESIGN.md"],
            swiftSettings: strict
        ),
        .target(
            name: "IsoKVHistory",
            dependencies: ["ConcurrentMaps"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "isokv",
            dependencies: [
                "ConcurrentMaps",
                "IsoKV",
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
            name: "IsoKVTests",
            dependencies: ["IsoKV", "ConcurrentMaps", "IsoKVHistory"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IsoKVHistoryTests",
            dependencies: ["IsoKVHistory"],
            swiftSettings: strict
        ),
    ]
)
