import Foundation
import MapBenchmarks
import Testing

/// The bench plumbing, with no clock: every workload runs a fixed number of operations on real threads against
/// every registered implementation, and the records survive a JSON round trip. Nothing here times anything.
@Suite("MapBench Concurrent plumbing")
struct MapBenchConcurrentPlumbingTests {
    static let opsPerThread = 300

    @Test(
        "every workload runs on every implementation and counts its operations",
        arguments: MapWorkload.allCases)
    func workloadRuns(_ workload: MapWorkload) {
        for impl in MapImplementation.all {
            for threads in [1, 2] {
                let m = impl.run(workload, threads, .operationsPerThread(Self.opsPerThread))
                #expect(m.implementation == impl.name)
                #expect(m.workload == workload)
                #expect(m.threads == threads)
                #expect(m.operations == threads * Self.opsPerThread, "\(workload.rawValue) \(impl.name) ×\(threads)")
                #expect(m.seconds == 0)
            }
        }
    }

    @Test("smoke: a timed run measures a positive interval and counts whole batches")
    func smokeTimedRun() throws {
        let impl = try #require(MapImplementation.all.first { $0.name == MapImplementation.baselineName })
        // Under ThreadSanitizer the suite's other threads can keep these two off the CPU for a 20 ms window
        // (a CI run counted 0 operations); a longer window keeps the assertions and the test's speed elsewhere.
        #if TSAN
            let measure = Duration.seconds(1)
        #else
            let measure = Duration.milliseconds(20)
        #endif
        let m = impl.run(.loadMostlyHits, 2, .timed(warmup: .milliseconds(5), measure: measure))
        #expect(m.seconds > 0)
        #expect(m.operations > 0)
        #expect(m.operations % 64 == 0, "counted in whole batches")
    }

    @Test("MutexMap is registered first, as the baseline, and names are unique")
    func registry() {
        let names = MapImplementation.all.map(\.name)
        #expect(names.first == MapImplementation.baselineName)
        #expect(Set(names).count == names.count)
        #expect(names.contains("ReadMostlyMap"))
    }
}

@Suite("MapBench records")
struct MapBenchRecordTests {
    func record(_ w: String, _ impl: String, _ t: Int, _ ops: Double, source: String = "isokv") -> MapBenchRecord {
        let m = Measurement(
            workload: MapWorkload(rawValue: w)!, implementation: impl, threads: t, operations: Int(ops), seconds: 1)
        return MapBenchRecord(m, source: source)
    }

    @Test("ratio_to_mutex and scaling are derived per workload and thread count")
    func derive() throws {
        let ours = MapBenchRecord.derive(
            [
                record("load-mostly-hits", "MutexMap", 1, 100), record("load-mostly-hits", "MutexMap", 2, 50),
                record("load-mostly-hits", "ReadMostlyMap", 1, 200),
                record("load-mostly-hits", "ReadMostlyMap", 2, 400),
                record("range", "ReadMostlyMap", 2, 10)
            ], baselines: [])
        #expect(ours.allSatisfy { $0.ratioToMutex == nil }, "no baselines given")
        let derived = MapBenchRecord.derive(ours, baselines: ours)
        let rm2 = try #require(
            derived.first {
                $0.implementation == "ReadMostlyMap" && $0.threads == 2 && $0.workload == "load-mostly-hits"
            })
        #expect(rm2.ratioToMutex == 8)
        #expect(rm2.scaling == 2)
        let mm2 = try #require(derived.first { $0.implementation == "MutexMap" && $0.threads == 2 })
        #expect(mm2.ratioToMutex == 1)
        #expect(mm2.scaling == 0.5)
        let range = try #require(derived.first { $0.workload == "range" })
        #expect(range.ratioToMutex == nil, "no MutexMap record for range")
        #expect(range.scaling == nil, "no 1-thread record")

        let peer = MapBenchRecord.derive(
            [record("load-mostly-hits", "go:sync.Map", 2, 150, source: "go")], baselines: derived)
        #expect(peer[0].ratioToMutex == 3)
        #expect(peer[0].baseline == "MutexMap")
    }

    @Test("a document round-trips through JSON with snake_case keys and explicit nulls")
    func jsonRoundTrip() throws {
        let records = MapBenchRecord.derive([record("churn", "MutexMap", 2, 1000)], baselines: [])
        let doc = MapBenchDocument(title: "isokv bench maps", parameters: ["threads": "2"], results: records)
        let data = try JSONEncoder().encode(doc)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let first = try #require((object["results"] as? [[String: Any]])?.first)
        for key in [
            "workload", "implementation", "threads", "ops_per_sec", "operations", "seconds",
            "ratio_to_mutex", "baseline", "scaling", "source"
        ] {
            #expect(first[key] != nil, "missing \(key)")
        }
        #expect(first["ratio_to_mutex"] is NSNull)
        let back = try MapBenchDocument.decode(data)
        #expect(back.results == records)
        #expect(back.parameters == ["threads": "2"])
    }

    @Test("a peer file written by the Go program decodes")
    func goShapedDocument() throws {
        let json = """
            {"title": "go-syncmap-bench", "parameters": {"source": "go1.19.8", "threads": "1,2"},
             "results": [{"workload": "load-mostly-hits", "implementation": "go:sync.Map", "threads": 2,
                          "ops_per_sec": 4.0e7, "operations": 40000000, "seconds": 1.0, "ratio_to_mutex": 1.8,
                          "baseline": "go:Mutex+map", "scaling": 1.4, "source": "go1.19.8"}]}
            """
        let doc = try MapBenchDocument.decode(Data(json.utf8))
        #expect(doc.results.count == 1)
        #expect(doc.results[0].opsPerSec == 4.0e7)
        #expect(doc.results[0].baseline == "go:Mutex+map")
    }
}
