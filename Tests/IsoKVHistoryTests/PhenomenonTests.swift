import IsoKVHistory
import Testing

/// One hand-written history per phenomenon: the checker must find exactly it, print its cycle, and accept the
/// history at the levels that allow it.
@Suite struct PhenomenonTests {
    @Test func dirtyWriteIsG0() throws {
        // T1 and T2 both write x and y, their versions interleaved: x goes T1 → T2, y goes T2 → T1.
        let h = History([
            txn(1) {
                $0.write("x"); $0.write("y"); $0.commit(installed: ["x": 1, "y": 2])
            },
            txn(2) {
                $0.write("x"); $0.write("y"); $0.commit(installed: ["x": 2, "y": 1])
            }
        ])
        let a = try expectExactly([.g0], in: h)
        let cycle = try #require(a.anomalies.first)
        #expect(Set(cycle.transactions) == [1, 2])
        #expect(cycle.cycle.allSatisfy { $0.kind == .ww })
        #expect(
            ["T1 -ww(k=\"x\")-> T2 -ww(k=\"y\")-> T1", "T2 -ww(k=\"y\")-> T1 -ww(k=\"x\")-> T2"]
                .contains(cycle.explanation), "\(cycle.explanation)")
    }

    @Test func abortedReadIsG1a() throws {
        let h = History([
            txn(1) {
                $0.write("x"); $0.abort(code: "40001")
            },
            txn(2) {
                $0.read("x", .writer(1)); $0.commit()
            }
        ])
        let a = try expectExactly([.g1a], in: h)
        #expect(a.anomalies.first?.explanation == "T2 read \"x\" written by T1, which aborted (40001)")
    }

    @Test func intermediateReadIsG1b() throws {
        let h = History([
            txn(1) {
                let first = $0.write("x")
                #expect(first == 1)
                $0.write("x")
                $0.commit(installed: ["x": 1])
            },
            txn(2) {
                $0.read("x", .writer(1, write: 1)); $0.commit()
            }
        ])
        _ = try expectExactly([.g1b], in: h)
        // Reading T1's last write of x instead is an ordinary read.
        let fine = History([
            h.transactions[0],
            txn(2) {
                $0.read("x", .writer(1, write: 2)); $0.commit()
            }
        ])
        _ = try expectExactly([], in: fine)
    }

    @Test func circularInformationFlowIsG1c() throws {
        let h = History([
            txn(1) {
                $0.write("x"); $0.read("y", .version(1)); $0.commit(installed: ["x": 1])
            },
            txn(2) {
                $0.write("y"); $0.read("x", .version(1)); $0.commit(installed: ["y": 1])
            }
        ])
        let a = try expectExactly([.g1c], in: h)
        #expect(a.anomalies[0].cycle.map(\.kind) == [.wr, .wr])
    }

    @Test func lostUpdateIsGSingleAndLostUpdate() throws {
        // Both read counter at version 4 (written before the recorded history) and both write it.
        let h = History([
            txn(1, .readCommitted) {
                $0.read("counter", .version(4)); $0.write("counter"); $0.commit(installed: ["counter": 5])
            },
            txn(2, .readCommitted) {
                $0.read("counter", .version(4)); $0.write("counter"); $0.commit(installed: ["counter": 6])
            }
        ])
        let a = try expectExactly([.gSingle, .lostUpdate], in: h)
        let single = try #require(a.anomalies.first { $0.phenomenon == .gSingle })
        #expect(single.cycle.map(\.kind).sorted { $0.rawValue < $1.rawValue } == [.rw, .ww])
        let lost = try #require(a.anomalies.first { $0.phenomenon == .lostUpdate })
        #expect(lost.explanation == "T1, T2 all read version 4 of \"counter\" and all wrote it")
    }

    @Test func readSkewIsGSingle() throws {
        // T2 moves money from x to y; T1 reads x before and y after it.
        let h = History([
            txn(2) {
                $0.read("x", .version(1)); $0.read("y", .version(1)); $0.write("x"); $0.write("y")
                $0.commit(installed: ["x": 2, "y": 2])
            },
            txn(1) {
                $0.read("x", .version(1)); $0.read("y", .version(2)); $0.commit()
            }
        ])
        let a = try expectExactly([.gSingle], in: h)
        #expect(
            ["T1 -rw(k=\"x\")-> T2 -wr(k=\"y\")-> T1", "T2 -wr(k=\"y\")-> T1 -rw(k=\"x\")-> T2"]
                .contains(a.anomalies[0].explanation), "\(a.anomalies[0].explanation)")
    }

    @Test func writeSkewOfTwoDoctorsIsG2Item() throws {
        // Alice and Bob are on call (version 1 each); each checks both and goes off call.
        let h = History([
            txn(1, .snapshot) {
                $0.read("alice", .version(1)); $0.read("bob", .version(1)); $0.write("alice")
                $0.commit(installed: ["alice": 2])
            },
            txn(2, .snapshot) {
                $0.read("alice", .version(1)); $0.read("bob", .version(1)); $0.write("bob")
                $0.commit(installed: ["bob": 2])
            }
        ])
        let a = try expectExactly([.g2Item], in: h)
        #expect(
            ["T1 -rw(k=\"bob\")-> T2 -rw(k=\"alice\")-> T1", "T2 -rw(k=\"alice\")-> T1 -rw(k=\"bob\")-> T2"]
                .contains(a.anomalies[0].explanation), "\(a.anomalies[0].explanation)")
    }

    @Test func phantomViaScanAndInsertIsG2() throws {
        // Hotel double booking: each scans room 1's bookings, finds none, inserts its own.
        let room = KeyRange(prefix: "booking/room1/")
        let h = History([
            txn(1) {
                $0.scan(room, results: []); $0.write("booking/room1/alice");
                $0.commit(installed: ["booking/room1/alice": 1])
            },
            txn(2) {
                $0.scan(room, results: []); $0.write("booking/room1/bob");
                $0.commit(installed: ["booking/room1/bob": 1])
            }
        ])
        let a = try expectExactly([.g2], in: h)
        #expect(a.anomalies[0].cycle.allSatisfy { $0.kind == .rwPredicate && $0.range == room })
        #expect(a.anomalies[0].explanation.contains("-rw(range=[\"booking/room1/\", \"booking/room10\") k="))
        // An insert outside the scanned range is no phantom.
        let outside = History([
            h.transactions[0],
            txn(2) {
                $0.scan(room, results: []); $0.write("booking/room2/bob");
                $0.commit(installed: ["booking/room2/bob": 1])
            }
        ])
        _ = try expectExactly([], in: outside)
    }

    @Test func feketeReadOnlyAnomalyIsG2Item() throws {
        // Checking x and savings y, both 0 at version 1. T3 deposits 20 into x and commits; T1 (read-only) then
        // sees x = 20, y = 0; T2, which started before T3 committed, withdraws 10 from y with an overdraft penalty.
        let t2 = txn(2, .snapshot) {
            $0.read("x", .version(1)); $0.read("y", .version(1)); $0.write("y");
            $0.commit(order: 3, installed: ["y": 2])
        }
        let t3 = txn(3, .snapshot) {
            $0.read("x", .version(1)); $0.write("x"); $0.commit(order: 1, installed: ["x": 2])
        }
        let t1 = txn(1, .snapshot) {
            $0.read("x", .version(2)); $0.read("y", .version(1)); $0.commit(order: 2)
        }
        let a = try expectExactly([.g2Item], in: History([t2, t3, t1]))
        #expect(Set(a.anomalies[0].transactions) == [1, 2, 3])
        #expect(a.anomalies[0].cycle.map(\.kind).filter { $0 == .rw }.count == 2)
        // Without the read-only transaction the same writes are serializable (T2 before T3).
        _ = try expectExactly([], in: History([t2, t3]))
    }

    @Test func serialHistoryHasNoFindings() throws {
        let h = History([
            txn(1) {
                $0.read("x", .initial); $0.write("x"); $0.write("y"); $0.commit(installed: ["x": 1, "y": 1])
            },
            txn(2) {
                $0.read("x", .version(1)); $0.read("y", .writer(1)); $0.write("y"); $0.commit(installed: ["y": 2])
            },
            txn(3) {
                $0.scan(.all, results: [ScanEntry("x", .version(1)), ScanEntry("y", .version(2))]); $0.commit()
            },
            txn(4) {
                $0.write("x"); $0.abort(code: "rollback")
            },
            txn(5) {
                $0.delete("x"); $0.write("z"); $0.commit(installed: ["x": 2, "z": 1])
            },
            txn(6) {
                $0.scan(
                    .all, results: [ScanEntry("y", .version(2)), ScanEntry("z", .version(1))],
                    absent: [ScanEntry("x", .version(2))])
                $0.commit()
            }
        ])
        let a = try expectExactly([], in: h)
        #expect(a.stats.committed == 5 && a.stats.aborted == 1)
        #expect(a.stats.ambiguousAbsentReads == 0)
        #expect(a.stats.edges["wr", default: 0] > 0 && a.stats.edges["rw", default: 0] > 0)
    }

    @Test func interleavedButSerializableHistoryHasNoFindings() throws {
        // T1 reads x, T2 writes x and commits, T1 writes y and commits: equivalent to T1 then T2.
        let h = History([
            txn(2) {
                $0.read("x", .version(1)); $0.write("x"); $0.commit(order: 1, installed: ["x": 2])
            },
            txn(1) {
                $0.read("x", .version(1)); $0.write("y"); $0.commit(order: 2, installed: ["y": 1])
            },
            txn(3) {
                $0.read("y", .version(1)); $0.read("x", .version(2)); $0.commit(order: 3)
            }
        ])
        let a = try expectExactly([], in: h)
        #expect(a.stats.edges["rw"] == 1)  // T1 -rw(x)-> T2, the only ordering constraint between them
    }

    @Test func limitedScanCoversOnlyUpToItsLastKey() throws {
        // T1 scans [a, z) with limit 1 and gets "a"; T2 inserts "m" and reads y before T1 writes it.
        func history(limit: Int?) -> History {
            History([
                txn(1) {
                    $0.scan(KeyRange(from: "a", to: "z"), limit: limit, results: [ScanEntry("a", .version(1))])
                    $0.write("y"); $0.commit(installed: ["y": 1])
                },
                txn(2) {
                    $0.read("y", .initial); $0.write("m"); $0.commit(installed: ["m": 1])
                }
            ])
        }
        _ = try expectExactly([.g2], in: history(limit: nil))
        _ = try expectExactly([.g2], in: history(limit: 2))  // returned fewer than the limit: whole range covered
        _ = try expectExactly([], in: history(limit: 1))
    }

    @Test func scanOfDeletedKeyNeedsItsTombstone() throws {
        // "b" existed before the history (version 1); T2 deletes it (version 2); T1's scan of [a, c) sees it absent;
        // T3 re-inserts it (version 3), and T3 read z before T1 wrote it.
        func history(absent: [ScanEntry]) -> History {
            History([
                txn(2) {
                    $0.delete("b"); $0.commit(installed: ["b": 2])
                },
                txn(1) {
                    $0.scan(KeyRange(from: "a", to: "c"), results: [], absent: absent)
                    $0.write("z"); $0.commit(installed: ["z": 1])
                },
                txn(3) {
                    $0.read("z", .initial); $0.write("b"); $0.commit(installed: ["b": 3])
                }
            ])
        }
        let told = try expectExactly([.g2], in: history(absent: [ScanEntry("b", .version(2))]))
        #expect(told.stats.ambiguousAbsentReads == 0)
        // Without the tombstone the checker cannot tell which absent version the scan saw, and says so.
        let ambiguous = try expectExactly([], in: history(absent: []))
        #expect(ambiguous.stats.ambiguousAbsentReads == 1)
    }

    @Test func versionsOrderedByCommitOrderWhenNotInstalled() throws {
        // Reads name writers, writes carry no version: the commit order orders each key's versions.
        let h = History([
            txn(1) {
                $0.read("alice", .initial); $0.read("bob", .initial); $0.write("alice"); $0.commit(order: 1)
            },
            txn(2) {
                $0.read("alice", .initial); $0.read("bob", .initial); $0.write("bob"); $0.commit(order: 2)
            },
            txn(3) {
                $0.read("alice", .writer(1)); $0.read("bob", .writer(2)); $0.commit(order: 3)
            }
        ])
        _ = try expectExactly([.g2Item], in: h)
        let unordered = History([
            txn(1) {
                $0.write("x"); $0.commit()
            }
        ])
        #expect(throws: HistoryError.unorderedWrites(key: "x", txn: 1)) { try HistoryChecker().analyze(unordered) }
    }

    @Test func garbageReadsAndDuplicateVersions() throws {
        let h = History([
            txn(1) {
                $0.write("x"); $0.commit(installed: ["x": 1])
            },
            txn(2) {
                $0.write("x"); $0.commit(installed: ["x": 1])
            },
            txn(3) {
                $0.read("x", .version(7)); $0.read("y", .writer(99)); $0.read("x", .writer(4)); $0.commit()
            },
            txn(4) {
                $0.write("q"); $0.commit(installed: ["q": 1])
            }
        ])
        let a = try HistoryChecker().analyze(h)
        #expect(a.anomalies.filter { $0.phenomenon == .garbageRead }.count == 3)
        #expect(a.anomalies.filter { $0.phenomenon == .duplicateVersion }.count == 1)
        #expect(!a.result(at: .readUncommitted).isValid)
    }

    @Test func malformedHistoriesThrow() throws {
        let open = TransactionRecord(id: 1, level: .snapshot)
        #expect(throws: HistoryError.noOutcome(1)) { try HistoryChecker().analyze(History([open])) }
        let t = txn(1) { $0.commit() }
        #expect(throws: HistoryError.duplicateTransaction(1)) { try HistoryChecker().analyze(History([t, t])) }
        let bad = txn(1) {
            $0.write("x"); $0.commit(installed: ["x": -3])
        }
        #expect(throws: HistoryError.self) { try HistoryChecker().analyze(History([bad])) }
    }

    @Test func nonRepeatableReadIsGSingle() throws {
        // T1 reads x twice and sees T2's commit in between: allowed at read committed only.
        let h = History([
            txn(1, .readCommitted) {
                $0.read("x", .version(1)); $0.read("x", .version(2)); $0.commit()
            },
            txn(2, .readCommitted) {
                $0.write("x"); $0.commit(installed: ["x": 2])
            }
        ])
        _ = try expectExactly([.gSingle], in: h)
    }

    @Test func scanMissingOneInsertButSeeingAnotherIsPredicateGSingle() throws {
        // T2 inserts a and b into the range; T1's scan returns b but not a: no snapshot shows that.
        let h = History([
            txn(2) {
                $0.write("a"); $0.write("b"); $0.commit(installed: ["a": 1, "b": 1])
            },
            txn(1) {
                $0.scan(KeyRange(from: "a", to: "c"), results: [ScanEntry("b", .version(1))]); $0.commit()
            }
        ])
        let a = try expectExactly([.gSingle], in: h)
        #expect(a.anomalies[0].cycle.map(\.kind).contains(.rwPredicate))
    }

    @Test func exhaustedSearchBudgetStillReportsTheCycle() throws {
        // With no budget the narrow G-single search gives up; the component is classified by the cycle found.
        let h = History([
            txn(1) {
                $0.read("c", .version(4)); $0.write("c"); $0.commit(installed: ["c": 5])
            },
            txn(2) {
                $0.read("c", .version(4)); $0.write("c"); $0.commit(installed: ["c": 6])
            },
            txn(3) {
                $0.read("p", .initial); $0.read("q", .initial); $0.write("p"); $0.commit(installed: ["p": 1])
            },
            txn(4) {
                $0.read("p", .initial); $0.read("q", .initial); $0.write("q"); $0.commit(installed: ["q": 1])
            }
        ])
        let a = try HistoryChecker(searchBudget: 0).analyze(h)
        #expect(a.stats.searchBudgetExhausted)
        #expect(a.phenomena == [.gSingle, .lostUpdate, .g2Item], "\(a.anomalies)")
        let full = try HistoryChecker().analyze(h)
        #expect(!full.stats.searchBudgetExhausted && full.phenomena == a.phenomena)
    }

    @Test func absentReadIsExactOnlyWithoutDeletes() throws {
        // Write skew through an absent read: T1 finds no x and writes y; T2 finds no y and writes x.
        let skew = History([
            txn(1) {
                $0.read("x", .absent); $0.write("y"); $0.commit(installed: ["y": 1])
            },
            txn(2) {
                $0.read("y", .absent); $0.write("x"); $0.commit(installed: ["x": 1])
            }
        ])
        let exact = try expectExactly([.g2Item], in: skew)
        #expect(exact.stats.ambiguousAbsentReads == 0)
        // Once x is deleted during the history, "absent" may be the tombstone: no edge, and the checker says so.
        var withDelete = skew
        withDelete.transactions[1] = txn(2) {
            $0.read("y", .absent); $0.write("x"); $0.commit(installed: ["x": 3])
        }
        withDelete.transactions.append(
            txn(3) {
                $0.delete("x"); $0.commit(installed: ["x": 2])
            })
        let ambiguous = try expectExactly([], in: withDelete)
        #expect(ambiguous.stats.ambiguousAbsentReads == 1)
    }

    @Test func independentCyclesAreCountedSeparately() throws {
        // Two unrelated write skews: two components, two findings.
        func skew(_ a: TxnID, _ b: TxnID, _ x: HistoryKey, _ y: HistoryKey) -> [TransactionRecord] {
            [
                txn(a) {
                    $0.read(x, .initial); $0.read(y, .initial); $0.write(x); $0.commit(installed: [x: 1])
                },
                txn(b) {
                    $0.read(x, .initial); $0.read(y, .initial); $0.write(y); $0.commit(installed: [y: 1])
                }
            ]
        }
        let a = try HistoryChecker().analyze(History(skew(1, 2, "a", "b") + skew(3, 4, "c", "d")))
        #expect(a.anomalies.map(\.phenomenon) == [.g2Item, .g2Item])
        #expect(a.stats.cyclicComponents == 2)
        #expect(Set(a.anomalies.map { Set($0.transactions) }) == [[1, 2], [3, 4]])
    }

    @Test func reverseLimitedScanCoversDownToItsLastKey() throws {
        // A reverse scan of [a, z) with limit 1 returns "y": it covered [y, z) only, so an insert of "m" is no phantom.
        func history(reverse: Bool) -> History {
            History([
                txn(1) {
                    $0.scan(
                        KeyRange(from: "a", to: "z"), limit: 1, reverse: reverse, results: [ScanEntry("y", .version(1))]
                    )
                    $0.write("q"); $0.commit(installed: ["q": 1])
                },
                txn(2) {
                    $0.read("q", .initial); $0.write(reverse ? "m" : "y0");
                    $0.commit(installed: [reverse ? "m" : "y0": 1])
                }
            ])
        }
        _ = try expectExactly([], in: history(reverse: true))
        // Forward, the same scan covered [a, y]: "y0" sorts after "y", outside; so still nothing.
        _ = try expectExactly([], in: history(reverse: false))
        // But a forward scan that returned "y" did cover "m".
        let covered = History([
            txn(1) {
                $0.scan(KeyRange(from: "a", to: "z"), limit: 1, results: [ScanEntry("y", .version(1))])
                $0.write("q"); $0.commit(installed: ["q": 1])
            },
            txn(2) {
                $0.read("q", .initial); $0.write("m"); $0.commit(installed: ["m": 1])
            }
        ])
        _ = try expectExactly([.g2], in: covered)
    }
}
