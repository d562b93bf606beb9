/// Cycle search: Tarjan's strongly connected components on a sub-graph (edges filtered by kind), then a
/// breadth-first search inside one component for a short cycle of the wanted shape.
extension DependencyGraph {
    /// Edge masks of the search phases, narrowest first.
    enum Mask {
        static let ww: UInt8 = DependencyKind.ww.bit
        static let wwwr: UInt8 = DependencyKind.ww.bit | DependencyKind.wr.bit
        static let item: UInt8 = wwwr | DependencyKind.rw.bit
        static let all: UInt8 = item | DependencyKind.rwPredicate.bit
    }

    /// Strongly connected components of the sub-graph of edges in `mask`.
    struct Components {
        /// Node → component number (every node has one; trivial components included).
        var comp: [Int32]
        /// Members of each component with two or more nodes (the only ones that hold cycles, as there are no
        /// self-loops).
        var cyclic: [[Int32]]
    }

    /// Reusable BFS state; `stamp[n] == current` marks `n` visited in the current search, so no O(n) reset.
    struct Scratch {
        var stamp: [Int32]
        var current: Int32 = 0
        var parentEdge: [Int32]
        var queue: [Int32] = []
        /// Edge visits left before the search gives up looking for narrower cycles.
        var budget: Int
        var exhausted = false

        init(nodes: Int, budget: Int) {
            stamp = Array(repeating: 0, count: nodes)
            parentEdge = Array(repeating: -1, count: nodes)
            self.budget = budget
        }
    }

    /// Tarjan's algorithm, iterative (histories have 10^5 nodes: recursion would overflow the stack).
    func components(mask: UInt8) -> Components {
        let n = nodeCount
        var index = [Int32](repeating: -1, count: n)
        var low = [Int32](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var comp = [Int32](repeating: -1, count: n)
        var stack: [Int32] = []
        var call: [(node: Int32, pos: Int32)] = []
        var counter: Int32 = 0
        var compCount: Int32 = 0
        var cyclic: [[Int32]] = []

        for s in 0..<n where index[s] < 0 {
            index[s] = counter; low[s] = counter; counter += 1
            stack.append(Int32(s)); onStack[s] = true
            call.append((Int32(s), adjStart[s]))
            while let (v, pos) = call.last {
                let vi = Int(v)
                if pos < adjStart[vi + 1] {
                    call[call.count - 1].pos = pos + 1
                    let e = edges[Int(edgeOrder[Int(pos)])]
                    guard mask & e.kind.bit != 0 else { continue }
                    let w = Int(e.to)
                    if index[w] < 0 {
                        index[w] = counter; low[w] = counter; counter += 1
                        stack.append(e.to); onStack[w] = true
                        call.append((e.to, adjStart[w]))
                    } else if onStack[w] {
                        low[vi] = min(low[vi], index[w])
                    }
                } else {
                    call.removeLast()
                    if let parent = call.last { low[Int(parent.node)] = min(low[Int(parent.node)], low[vi]) }
                    if low[vi] == index[vi] {
                        var members: [Int32] = []
                        while let w = stack.popLast() {
                            onStack[Int(w)] = false
                            comp[Int(w)] = compCount
                            members.append(w)
                            if w == v { break }
                        }
                        if members.count > 1 { cyclic.append(members.reversed()) }
                        compCount += 1
                    }
                }
            }
        }
        return Components(comp: comp, cyclic: cyclic)
    }

    /// Breadth-first search from `source` over edges in `mask` that stay inside component `c`. Stops when it
    /// reaches `target` (if given) and returns true; without a target it visits everything reachable. Parents stay in
    /// `scratch` for ``path(to:scratch:)``. A `limited` search spends one unit of budget per edge looked at; when the
    /// budget runs out it stops and sets `scratch.exhausted`.
    func search(
        from source: Int32, to target: Int32?, mask: UInt8, comp: [Int32], c: Int32, limited: Bool,
        scratch: inout Scratch
    ) -> Bool {
        scratch.current += 1
        let mark = scratch.current
        scratch.stamp[Int(source)] = mark
        scratch.parentEdge[Int(source)] = -1
        scratch.queue.removeAll(keepingCapacity: true)
        scratch.queue.append(source)
        var head = 0
        while head < scratch.queue.count {
            let v = Int(scratch.queue[head])
            head += 1
            for pos in Int(adjStart[v])..<Int(adjStart[v + 1]) {
                if limited {
                    scratch.budget -= 1
                    if scratch.budget < 0 {
                        scratch.exhausted = true
                        return false
                    }
                }
                let ei = edgeOrder[pos]
                let e = edges[Int(ei)]
                let w = Int(e.to)
                guard mask & e.kind.bit != 0, comp[w] == c, scratch.stamp[w] != mark else { continue }
                scratch.stamp[w] = mark
                scratch.parentEdge[w] = ei
                if e.to == target { return true }
                scratch.queue.append(e.to)
            }
        }
        return false
    }

    /// Whether the last search visited `node`.
    func visited(_ node: Int32, _ scratch: Scratch) -> Bool { scratch.stamp[Int(node)] == scratch.current }

    /// Edges from the last search's source to `target` (which it visited), in order.
    func path(to target: Int32, scratch: Scratch) -> [Int32] {
        var out: [Int32] = []
        var v = target
        while scratch.parentEdge[Int(v)] >= 0 {
            let ei = scratch.parentEdge[Int(v)]
            out.append(ei)
            v = edges[Int(ei)].from
        }
        return out.reversed()
    }

    /// Internal edges of a component whose kind is in `mask`, in a deterministic order.
    func internalEdges(of members: [Int32], comp: [Int32], mask: UInt8) -> [Int32] {
        var out: [Int32] = []
        for v in members {
            for pos in Int(adjStart[Int(v)])..<Int(adjStart[Int(v) + 1]) {
                let ei = edgeOrder[pos]
                let e = edges[Int(ei)]
                if mask & e.kind.bit != 0, comp[Int(e.to)] == comp[Int(v)] { out.append(ei) }
            }
        }
        return out
    }

    /// The cycle closing `edge` (u → v) with the shortest path v → u over `mask` inside the component, or nil if
    /// there is none. Not limited by the budget: one search costs at most the component's edges.
    func cycle(closing edge: Int32, mask: UInt8, comp: [Int32], scratch: inout Scratch) -> [Int32]? {
        let e = edges[Int(edge)]
        guard
            search(
                from: e.to, to: e.from, mask: mask, comp: comp, c: comp[Int(e.from)], limited: false,
                scratch: &scratch)
        else { return nil }
        return [edge] + path(to: e.from, scratch: scratch)
    }

    /// A G-single cycle through one of `antiEdges`: an anti-dependency u → v closed by a path v → u of ww/wr edges.
    /// One search per distinct head v serves every anti-dependency into it. Limited by the budget: nil when it runs out.
    func singleAntiDependencyCycle(among antiEdges: [Int32], comp: [Int32], scratch: inout Scratch) -> [Int32]? {
        var byHead: [Int32: [Int32]] = [:]
        var heads: [Int32] = []
        for ei in antiEdges {
            let v = edges[Int(ei)].to
            if byHead[v] == nil { heads.append(v) }
            byHead[v, default: []].append(ei)
        }
        for v in heads {
            _ = search(
                from: v, to: nil, mask: Mask.wwwr, comp: comp, c: comp[Int(v)], limited: true,
                scratch: &scratch)
            if scratch.exhausted { return nil }
            for ei in byHead[v]! where visited(edges[Int(ei)].from, scratch) {
                return [ei] + path(to: edges[Int(ei)].from, scratch: scratch)
            }
        }
        return nil
    }

    /// Converts edge indices to printable steps.
    func steps(_ cycle: [Int32]) -> [CycleStep] {
        cycle.map { ei in
            let e = edges[Int(ei)]
            return CycleStep(
                from: ids[Int(e.from)], to: ids[Int(e.to)], kind: e.kind, key: keys[Int(e.key)],
                range: e.range >= 0 ? ranges[Int(e.range)] : nil)
        }
    }

    /// Every cycle phenomenon: at most one cycle per phase per strongly connected component, each under its
    /// narrowest class (see DESIGN.md, "cycle search").
    func findCycles(budget: Int, stats: inout HistoryStats) -> [Anomaly] {
        var found: [Anomaly] = []
        var scratch = Scratch(nodes: nodeCount, budget: budget)

        // G0: cycles of ww edges.
        let ww = components(mask: Mask.ww)
        for members in ww.cyclic {
            guard let first = internalEdges(of: members, comp: ww.comp, mask: Mask.ww).first,
                let c = cycle(closing: first, mask: Mask.ww, comp: ww.comp, scratch: &scratch)
            else { continue }
            found.append(Anomaly(phenomenon: .g0, cycle: steps(c)))
        }

        // G1c: cycles of ww/wr edges with at least one wr (the pure-ww ones are G0 above).
        let wwwr = components(mask: Mask.wwwr)
        for members in wwwr.cyclic {
            guard let first = internalEdges(of: members, comp: wwwr.comp, mask: DependencyKind.wr.bit).first,
                let c = cycle(closing: first, mask: Mask.wwwr, comp: wwwr.comp, scratch: &scratch)
            else { continue }
            found.append(Anomaly(phenomenon: .g1c, cycle: steps(c)))
        }

        // Anti-dependency phases: item rw (G-single, else G2-item), then predicate rw (G-single, else G2).
        for (mask, anti, wider) in [
            (Mask.item, DependencyKind.rw.bit, Phenomenon.g2Item),
            (Mask.all, DependencyKind.rwPredicate.bit, Phenomenon.g2)
        ] {
            let graph = components(mask: mask)
            if mask == Mask.all { stats.cyclicComponents = graph.cyclic.count }
            for members in graph.cyclic {
                let antiEdges = internalEdges(of: members, comp: graph.comp, mask: anti)
                guard let first = antiEdges.first else { continue }
                if let c = singleAntiDependencyCycle(among: antiEdges, comp: graph.comp, scratch: &scratch) {
                    found.append(Anomaly(phenomenon: .gSingle, cycle: steps(c)))
                    continue
                }
                // No G-single through these edges (or no budget left to be sure): report the shortest cycle through
                // the first one, classified by what it holds.
                guard let c = cycle(closing: first, mask: mask, comp: graph.comp, scratch: &scratch) else { continue }
                let antiCount = c.filter { edges[Int($0)].kind.isAntiDependency }.count
                found.append(Anomaly(phenomenon: antiCount == 1 ? .gSingle : wider, cycle: steps(c)))
            }
        }
        stats.searchBudgetExhausted = scratch.exhausted
        return found
    }
}
