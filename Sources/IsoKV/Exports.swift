// `import IsoKV` brings the store contract (`KeyValueStore`, `Bytes`, `IsoKVError`, …) with the engine, so that
// code written against the embedded database needs one import.
@_exported import IsoKVCore
