// Compiled together with Sources/ConcurrentMaps by scripts/probe-no-retain (whole-module, -O): the functions
// below are the roots whose optimized code must contain no retain or release.

@inline(never)
public func probeReadMostlyLoad(_ map: ReadMostlyMap<Int, Int>, _ key: Int) -> Int? {
    map.load(key)
}

// Self-test: this one holds a strong reference to the shared view, as naive Swift code would. The checker must
// find the retain here, or it proves nothing.
@inline(never)
public func probeSelfTestRetainingLoad(_ map: ReadMostlyMap<Int, Int>, _ key: Int) -> Int? {
    let view = map.read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
    let entry = view.m[key]
    return entry?.load(Int.self)
}

@inline(never)
public func probeHashTrieLoad(_ map: HashTrieMap<Int, Int>, _ key: Int) -> Int? {
    map.load(key)
}
