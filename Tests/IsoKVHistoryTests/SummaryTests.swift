import Foundation
import IsoKVHistory
import Testing

@Suite struct HistorySummaryTests {
    static let writeSkew = History([
        txn(1, .snapshot) {
            $0.read("alice", .version(1)); $0.read("bob", .version(1)); $0.write("alice");
            $0.commit(installed: ["alice": 2])
        },
        txn(2, .snapshot) {
            $0.read("alice", .version(1)); $0.read("bob", .version(1)); $0.write("bob");
            $0.commit(installed: ["bob": 2])
        },
        txn(3, .snapshot) {
            $0.write("carol"); $0.abort(code: "40001")
        }
    ])

    @Test func summaryCountsAndPrintsCycles() throws {
        let analysis = try HistoryChecker().analyze(Self.writeSkew)
        let atSerializable = analysis.result(at: .serializable).summary(maxCycles: 5)
        #expect(!atSerializable.valid)
        #expect(atSerializable.found == ["G2-item": 1])
        #expect(atSerializable.violations == ["G2-item": 1])
        #expect(atSerializable.firstViolations.count == 1)
        #expect(atSerializable.firstViolations[0].hasPrefix("G2-item: T"))
        #expect(atSerializable.stats.committed == 2 && atSerializable.stats.aborted == 1)
        let atSnapshot = analysis.result(at: .snapshot).summary()
        #expect(atSnapshot.valid && atSnapshot.found == ["G2-item": 1] && atSnapshot.violations.isEmpty)
        #expect(analysis.result(at: .serializable).summary(maxCycles: 0).firstViolations.isEmpty)
        #expect(atSnapshot.rows.count == Phenomenon.allCases.count)
        #expect(
            atSnapshot.rows.first { $0.phenomenon == "G2-item" }
                == PhenomenonCount(phenomenon: "G2-item", found: 1, forbidden: false))
        #expect(atSerializable.rows.first { $0.phenomenon == "G2-item" }?.forbidden == true)
        #expect(atSnapshot.rows.filter { $0.phenomenon != "G2-item" }.allSatisfy { $0.found == 0 })
    }

    @Test func summaryAndHistoryRoundTripThroughJSON() throws {
        let summary = try HistoryChecker.check(Self.writeSkew, at: .serializable).summary()
        let json = try JSONEncoder().encode(summary)
        #expect(try JSONDecoder().decode(HistorySummary.self, from: json) == summary)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"level\":\"serializable\""))

        var h = Self.writeSkew
        h.transactions.append(
            txn(4) {
                $0.scan(
                    KeyRange(prefix: HistoryKey(bytes: [0x00, 0xFF])), limit: 3, reverse: true,
                    results: [ScanEntry(HistoryKey(bytes: [0x00, 0xFF, 0x01]), .writer(1, write: 1))])
                $0.delete("bob")
                $0.commit(order: 9, installed: ["bob": 3])
            })
        let back = try JSONDecoder().decode(History.self, from: JSONEncoder().encode(h))
        #expect(back == h)
    }

    @Test func mixedLevelsJudgeEachFindingByItsWeakestParticipant() throws {
        func skew(_ a: HistoryIsolation, _ b: HistoryIsolation) -> History {
            History([
                txn(1, a) {
                    $0.read("alice", .version(1)); $0.read("bob", .version(1)); $0.write("alice");
                    $0.commit(installed: ["alice": 2])
                },
                txn(2, b) {
                    $0.read("alice", .version(1)); $0.read("bob", .version(1)); $0.write("bob");
                    $0.commit(installed: ["bob": 2])
                }
            ])
        }
        let both = try HistoryChecker.checkAtRecordedLevels(skew(.serializable, .serializable))
        #expect(!both.isValid && both.phenomena == [.g2Item] && both.level == .serializable)
        let mixed = try HistoryChecker.checkAtRecordedLevels(skew(.serializable, .snapshot))
        #expect(mixed.isValid && mixed.allowed.map(\.phenomenon) == [.g2Item] && mixed.level == .serializable)
        // An aborted read is judged at the reader's level only.
        let dirty = History([
            txn(1, .serializable) {
                $0.write("x"); $0.abort(code: "40001")
            },
            txn(2, .readUncommitted) {
                $0.read("x", .writer(1)); $0.commit()
            },
            txn(3, .readCommitted) {
                $0.read("x", .writer(1)); $0.commit()
            }
        ])
        let r = try HistoryChecker.checkAtRecordedLevels(dirty)
        #expect(r.violations.map(\.transactions) == [[3, 1]] && r.allowed.map(\.transactions) == [[2, 1]])
    }

    @Test func observedFromStoreVersion() {
        #expect(Observed(version: nil) == .absent)
        #expect(Observed(version: 0) == .initial)
        #expect(Observed(version: 7) == .version(7))
        #expect(Observed.writer(3, write: 2).description == "T3.w2")
    }

    @Test func keysAndRangesPrintReadably() {
        #expect(HistoryKey("x").description == "\"x\"")
        #expect(HistoryKey(bytes: [0x00, 0xAB]).description == "0x00ab")
        #expect(KeyRange(from: "a", to: "c").description == "[\"a\", \"c\")")
        #expect(KeyRange.all.description == "(-inf, +inf)")
        #expect(KeyRange(prefix: "ab").upper == "ac")
        #expect(KeyRange(prefix: HistoryKey(bytes: [0x61, 0xFF])).upper == "b")
        #expect(KeyRange(prefix: HistoryKey(bytes: [0xFF])).upper == nil)
        #expect(KeyRange(from: "a", to: "c").contains("b") && !KeyRange(from: "a", to: "c").contains("c"))
        #expect(KeyRange(from: "a", to: "c", upperInclusive: true).contains("c"))
    }

    @Test func levelTableFollowsAdya() {
        #expect(
            HistoryIsolation.readUncommitted.forbidden.intersection([.g0, .g1a, .g1b, .g1c, .gSingle, .g2Item, .g2])
                == [.g0])
        #expect(
            HistoryIsolation.readCommitted.forbidden.contains(.g1c)
                && !HistoryIsolation.readCommitted.forbidden.contains(.lostUpdate))
        #expect(HistoryIsolation.snapshot.forbidden.isSuperset(of: [.gSingle, .lostUpdate]))
        #expect(
            !HistoryIsolation.snapshot.forbidden.contains(.g2Item) && !HistoryIsolation.snapshot.forbidden.contains(.g2)
        )
        #expect(HistoryIsolation.serializable.forbidden == Set(Phenomenon.allCases))
        #expect(Phenomenon.g2.forbiddenFrom == .serializable && Phenomenon.g1b.forbiddenFrom == .readCommitted)
    }
}
