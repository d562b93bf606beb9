// swift-tools-version: 6.1
//
// IsoKV: a transactional key-value store and a concurrency lab.
//
// Module map (grows with the roadmap; only modules with real content exist):
//   ConcurrentMaps  concurrent hash maps (sync.Map design and rivals), the project lock, epoch reclamation
//   IsoKV           the embedded MVCC engine and the store protocol
//   isokv           the one CLI executable: bench, lab, check, serve...
// Planned: IsoKVPostgres (PostgreSQL backend), IsoKVServer (HTTP), IsoKVLab (anomaly replays, report).
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The libFuzzer target (IsoKVStorage/DESIGN.md, "Fuzzing") has no `main`: it links only with
/// `--sanitize=fuzzer`, so it exists only when `ISOKV_FUZZ=1` is set and plain `swift build`/`swift test` ignore it.
let fuzzing = Context.environment["ISOKV_FUZZ"] == "1"

let package = Package(
    name: "IsoKV",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ConcurrentMaps", targets: ["ConcurrentMaps"]),
        .library(name: "IsoKVStorage", targets: ["IsoKVStorage"]),
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
            name: "IsoKVStorage",
            dependencies: ["ConcurrentMaps"],
            exclude: ["DESIGN.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "isokv",
            dependencies: [
                "ConcurrentMaps",
                "IsoKVStorage",
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
            name: "IsoKVStorageTests",
            dependencies: ["IsoKVStorage"],
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
