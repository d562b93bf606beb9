// `import IsoKV` brings the store contract (`KeyValueStore`, `Bytes`, `IsoKVError`, …) with the engine, so that
// code written against the embedded database needs one import.
@_exported import IsoKVCore
// The durability layer's types that appear in the engine's public API (the rest of IsoKVStorage stays internal to
// the engine's users).
@_exported import enum IsoKVStorage.DurabilityMode
@_exported import struct IsoKVStorage.WALStatistics
